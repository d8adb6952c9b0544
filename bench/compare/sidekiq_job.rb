# The Sidekiq side of bench/compare: one job class that sleeps ms / 1000 s
# (Ruby's sleep: the stand-in for network I/O, like the bench plugin's
# nanosleep). The worker process counts the jobs it finished; when it has
# $BENCH_JOBS, it writes "<first start> <last end>" (CLOCK_MONOTONIC seconds)
# to $BENCH_RESULT.
require "sidekiq"

module Bench
  LOCK = Mutex.new
  @done = 0
  @first = nil
  class << self
    def started
      LOCK.synchronize { @first ||= Process.clock_gettime(Process::CLOCK_MONOTONIC) }
    end

    def finished
      now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      LOCK.synchronize do
        @done += 1
        File.write(ENV.fetch("BENCH_RESULT"), "#{@first} #{now}\n") if @done == Integer(ENV.fetch("BENCH_JOBS"))
      end
    end
  end
end

class SleepJob
  include Sidekiq::Worker
  sidekiq_options retry: false

  def perform(ms)
    Bench.started
    sleep(ms / 1000.0)
    Bench.finished
  end
end
