# Pushes $BENCH_JOBS SleepJob jobs (20 ms) in bulks of 1,000.
require_relative "sidekiq_job"

n = Integer(ENV.fetch("BENCH_JOBS"))
(n / 1000.0).ceil.times do |i|
  count = [1000, n - i * 1000].min
  Sidekiq::Client.push_bulk("class" => SleepJob, "args" => Array.new(count) { [20] })
end
