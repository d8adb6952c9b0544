#!/usr/bin/env bash
# bench/compare/run.sh [sidekiq] [celery] [foxworker]: the same sleeping job
# (20 ms sleep, $BENCH_JOBS jobs, default 20,000, all enqueued before the
# worker starts) through Sidekiq (-c 50), Celery (threads pool, -c 50) and
# foxworker (concurrency 50, prefetch 100), all on one private redis-server
# (appendonly yes, fsync every second, as tests/harness starts it), flushed
# between runs. Prints one line per system:
#   COMPARE <system> <jobs/s> jobs/s
# Sidekiq and Celery: from the first job's start to the last job's end, timed
# inside the worker process (its boot is outside the clock). foxworker
# (bench/dispatch_bench c50_redis): from Supervisor::Start, connection
# included, to the last XACK in Redis.
# Not run by CI or by bench/run: it needs Debian's ruby-sidekiq and
# python3-celery (apt-get install ruby-sidekiq python3-celery python3-redis).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export BENCH_JOBS=${BENCH_JOBS:-20000}
systems=("$@")
[ ${#systems[@]} -gt 0 ] || systems=(sidekiq celery foxworker)

tmp=$(mktemp -d /tmp/foxworker-compare.XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --appendonly yes --appendfsync everysec \
  --save "" --auto-aof-rewrite-percentage 0 >"$tmp/redis.log" 2>&1 &
redis_pid=$!
worker_pid=
cleanup() {
  [ -z "$worker_pid" ] || kill "$worker_pid" 2>/dev/null || true
  kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
url="redis://127.0.0.1:$port/0"

# Waits for $BENCH_RESULT ("first_start last_end"), prints the rate, stops the worker.
await() {
  local name=$1
  for _ in $(seq 6000); do [ -s "$BENCH_RESULT" ] && break; sleep 0.1; done
  [ -s "$BENCH_RESULT" ] || { echo "compare: $name did not finish" >&2; exit 1; }
  kill "$worker_pid"; wait "$worker_pid" 2>/dev/null || true; worker_pid=
  read -r first last <"$BENCH_RESULT"
  /usr/bin/python3 -c "import sys; n,a,b=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(f'COMPARE $name {n/(b-a):.0f} jobs/s ({n} jobs in {b-a:.2f} s)')" \
    "$BENCH_JOBS" "$first" "$last"
}

for system in "${systems[@]}"; do
  redis-cli -p "$port" flushall >/dev/null
  export BENCH_RESULT="$tmp/$system.result"
  case "$system" in
    sidekiq)
      (cd "$here" && REDIS_URL=$url ruby sidekiq_enqueue.rb)
      (cd "$here" && REDIS_URL=$url exec sidekiq -c 50 -q default -r ./sidekiq_job.rb \
        >"$tmp/sidekiq.log" 2>&1) &
      worker_pid=$!
      await sidekiq ;;
    celery)
      (cd "$here" && BENCH_BROKER_URL=$url /usr/bin/python3 celery_tasks.py)
      (cd "$here" && BENCH_BROKER_URL=$url exec /usr/bin/python3 -m celery -A celery_tasks worker \
        -P threads -c 50 --loglevel=WARNING >"$tmp/celery.log" 2>&1) &
      worker_pid=$!
      await celery ;;
    foxworker)
      build=${FOXWORKER_BENCH_BUILD:-$root/build-bench}
      cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFOXWORKER_BUILD_TESTS=OFF >/dev/null
      cmake --build "$build" --target dispatch_bench -j2 >/dev/null
      FOXWORKER_BENCH_REDIS_URL=$url FOXWORKER_BENCH_DISPATCH_JOBS=$BENCH_JOBS \
        FOXWORKER_BENCH_DISPATCH_ROUNDS=${FOXWORKER_BENCH_DISPATCH_ROUNDS:-1} \
        "$build/bench/dispatch_bench" c50_redis | sed -n 's/^BENCH dispatch.c50_redis.jobs_per_s \([0-9]*\) .*/COMPARE foxworker \1 jobs\/s/p' ;;
    *) echo "compare: unknown system \"$system\" (known: sidekiq, celery, foxworker)" >&2; exit 2 ;;
  esac
done
