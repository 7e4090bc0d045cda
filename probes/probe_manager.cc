#include "probes/probe_manager.h"

#include <condition_variable>
#include <deque>
#include <thread>

#include "agent/core/log.h"

namespace nodelet::probes {

std::string_view toString(Kind k) {
  switch (k) {
    case Kind::Liveness:
      return "Liveness";
    case Kind::Readiness:
      return "Readiness";
    case Kind::Startup:
      return "Startup";
  }
  return "?";
}

// A few threads that run probe executions, so a slow probe never delays the others' timers.
class Manager::Pool {
 public:
  explicit Pool(size_t n) {
    for (size_t i = 0; i < n; ++i) threads_.emplace_back([this](std::stop_token st) { run(st); });
  }
  ~Pool() {
    {
      std::lock_guard g(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.request_stop();
  }
  void post(std::function<void()> f) {
    {
      std::lock_guard g(mu_);
      q_.push_back(std::move(f));
    }
    cv_.notify_one();
  }

 private:
  void run(std::stop_token st) {
    std::unique_lock l(mu_);
    while (!st.stop_requested() && !stopping_) {
      if (q_.empty()) {
        cv_.wait(l);
        continue;
      }
      auto f = std::move(q_.front());
      q_.pop_front();
      l.unlock();
      f();
      l.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stopping_{false};
  std::vector<std::jthread> threads_;
};

Manager::Manager(Runner& runner, Clock& clock, Sink sink, size_t threads, uint64_t seed)
    : runner_(runner),
      clock_(clock),
      sink_(std::move(sink)),
      alive_(std::make_shared<Alive>(this)),
      rng_(seed),
      threads_(threads) {}

void Manager::startThreadsLocked() {
  if (threads_ == 0 || pool_) return;
  pool_ = std::make_unique<Pool>(threads_);
  scheduler_ = std::jthread([this](std::stop_token st) {
    while (!st.stop_requested()) {
      const auto next = tick();
      std::unique_lock l(mu_);
      if (stopping_) return;
      // Until the next due probe, or a new container's probes.
      clock_.waitUntil(wake_, l, next.value_or(clock_.monotonicNow() + std::chrono::hours(1)));
    }
  });
}

Manager::~Manager() {
  {
    std::lock_guard g(alive_->mu);  // waits for a completion being applied
    alive_->manager = nullptr;
  }
  {
    std::lock_guard g(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  scheduler_ = std::jthread();  // joins
  pool_.reset();
}

Manager::Worker* Manager::find(Container& c, Kind k) {
  for (auto& w : c.workers)
    if (w.kind == k) return &w;
  return nullptr;
}
const Manager::Worker* Manager::find(const Container& c, Kind k) const {
  for (const auto& w : c.workers)
    if (w.kind == k) return &w;
  return nullptr;
}

MonoTime Manager::onGrid(MonoTime t) const {
  const auto ns = t.time_since_epoch().count();
  const auto grid = kGrid.count();
  return MonoTime(Duration((ns + grid - 1) / grid * grid));
}

void Manager::schedule(const std::string& id, Kind kind, MonoTime at) { due_.push({at, id, kind}); }

void Manager::add(const Target& t) {
  std::lock_guard g(mu_);
  if (containers_.contains(t.container_id)) return;
  startThreadsLocked();
  Container c{std::make_shared<const Target>(t), {}, false};
  const MonoTime now = clock_.monotonicNow();
  auto worker = [&](Kind k, const std::optional<api::Probe>& p) {
    if (!p) return;
    Worker w{k, *p};
    // The first run comes after a random part of the period.
    const auto period = std::chrono::seconds(std::max(p->period_seconds, 1));
    w.next_run = onGrid(now + Duration(static_cast<int64_t>(
                                  rng_() % static_cast<uint64_t>(Duration(period).count()))));
    schedule(t.container_id, k, w.next_run);
    wake_.notify_all();
    // Initial results, as the kubelet's: readiness Failure, liveness Success, startup Unknown.
    w.result = k == Kind::Readiness  ? ProbeResult::Failure
               : k == Kind::Liveness ? ProbeResult::Success
                                     : ProbeResult::Unknown;
    c.workers.push_back(w);
  };
  worker(Kind::Startup, t.startup);
  worker(Kind::Liveness, t.liveness);
  worker(Kind::Readiness, t.readiness);
  containers_.emplace(t.container_id, std::move(c));
}

void Manager::retain(const std::set<std::string>& alive) {
  std::lock_guard g(mu_);
  std::erase_if(containers_, [&](const auto& kv) { return !alive.contains(kv.first); });
  // Series of pods with nothing probed any more go (a restarting container keeps its pod's).
  std::set<std::string> pods;
  for (const auto& [id, c] : containers_) pods.insert(c.target->pod_uid);
  std::erase_if(by_container_,
                [&](const auto& kv) { return !pods.contains(std::get<0>(kv.first)); });
}

std::vector<Manager::ContainerCounters> Manager::containerCounters() const {
  std::lock_guard g(mu_);
  std::vector<ContainerCounters> out;
  for (const auto& [key, counters] : by_container_) {
    const auto& [uid, full, container, kind] = key;
    // "name_namespace": neither part can hold '_' (DNS names).
    const size_t sep = full.rfind('_');
    out.push_back({uid, full.substr(0, sep), sep == std::string::npos ? "" : full.substr(sep + 1),
                   container, kind, counters});
  }
  return out;
}

bool Manager::watching(const std::string& id) const {
  std::lock_guard g(mu_);
  return containers_.contains(id);
}

bool Manager::ready(const std::string& id) const {
  std::lock_guard g(mu_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return true;
  const Container& c = it->second;
  if (const Worker* s = find(c, Kind::Startup); s && s->result != ProbeResult::Success)
    return c.seeded_ready;
  const Worker* r = find(c, Kind::Readiness);
  if (!r) return true;
  if (c.seeded_ready && r->successes == 0 && r->failures < r->probe.failure_threshold) return true;
  return r->result == ProbeResult::Success;
}

bool Manager::started(const std::string& id) const {
  std::lock_guard g(mu_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return true;
  const Worker* s = find(it->second, Kind::Startup);
  return !s || s->result == ProbeResult::Success || it->second.seeded_ready;
}

void Manager::seedReady(const std::string& id) {
  std::lock_guard g(mu_);
  auto it = containers_.find(id);
  if (it != containers_.end()) it->second.seeded_ready = true;
}

std::optional<MonoTime> Manager::tick() {
  std::vector<Run> due;
  std::optional<MonoTime> next;
  {
    std::lock_guard g(mu_);
    const MonoTime now = clock_.monotonicNow();
    while (!due_.empty() && due_.top().at <= now) {
      const Due d = due_.top();
      due_.pop();
      auto it = containers_.find(d.id);
      if (it == containers_.end()) continue;  // container gone
      Container& c = it->second;
      Worker* w = find(c, d.kind);
      if (!w || w->next_run != d.at || w->on_hold) continue;  // superseded
      const auto period = std::chrono::seconds(std::max(w->probe.period_seconds, 1));
      w->next_run = onGrid(now + period);
      schedule(d.id, d.kind, w->next_run);
      if (w->running) continue;  // the last run has not finished: skip this one
      const Worker* startup = find(c, Kind::Startup);
      const bool startup_done = !startup || startup->result == ProbeResult::Success;
      if (w->kind != Kind::Startup && !startup_done) continue;  // startup first
      if (w->kind == Kind::Startup && startup_done) continue;   // startup is done for good
      if (now < c.target->started + std::chrono::seconds(w->probe.initial_delay_seconds)) continue;
      w->running = true;
      const auto& probe = w->kind == Kind::Liveness    ? c.target->liveness
                          : w->kind == Kind::Readiness ? c.target->readiness
                                                       : c.target->startup;
      due.push_back({d.id, w->kind, c.target, &probe->handler,
                     std::chrono::seconds(std::max(w->probe.timeout_seconds, 1))});
    }
    // Drop stale entries at the top so the next due time is real.
    while (!due_.empty()) {
      const Due& d = due_.top();
      auto it = containers_.find(d.id);
      const Worker* w = it == containers_.end() ? nullptr : find(it->second, d.kind);
      if (w && w->next_run == d.at && !w->on_hold) break;
      due_.pop();
    }
    if (!due_.empty()) next = due_.top().at;
  }
  for (auto& r : due) dispatch(std::move(r));
  return next;
}

void Manager::dispatch(Run r) {
  const MonoTime start = clock_.monotonicNow();
  if (!pool_) {  // tests: inline
    Outcome o = runner_.run(*r.handler, r.target->container_id, r.target->endpoint, r.timeout);
    apply(r.id, r.kind, o, clock_.monotonicNow() - start);
    return;
  }
  Runner::Done done = [alive = alive_, id = r.id, kind = r.kind, start](Outcome o) {
    std::lock_guard g(alive->mu);
    if (alive->manager)
      alive->manager->apply(id, kind, o, alive->manager->clock_.monotonicNow() - start);
  };
  // The handler lives in the Target the worker holds: a probe in flight never copies it.
  if (runner_.start(*r.handler, r.target->endpoint, r.timeout, done)) return;
  pool_->post([this, r = std::move(r), start] {
    Outcome o = runner_.run(*r.handler, r.target->container_id, r.target->endpoint, r.timeout);
    apply(r.id, r.kind, o, clock_.monotonicNow() - start);
  });
}

void Manager::apply(const std::string& id, Kind kind, const Outcome& o, Duration took) {
  std::optional<ProbeEvent> event;
  {
    std::lock_guard g(mu_);
    auto& counter = counters_[std::string(toString(kind))];
    counter.total += took;
    (o.result == ProbeResult::Success   ? counter.success
     : o.result == ProbeResult::Failure ? counter.failure
                                        : counter.unknown)++;
    auto it = containers_.find(id);
    if (it == containers_.end()) return;  // removed while probing
    Container& c = it->second;
    auto& mine =
        by_container_[{c.target->pod_uid, c.target->pod_name, c.target->container_name, kind}];
    mine.total += took;
    (o.result == ProbeResult::Success   ? mine.success
     : o.result == ProbeResult::Failure ? mine.failure
                                        : mine.unknown)++;
    Worker* w = find(c, kind);
    if (!w) return;
    w->running = false;
    if (o.result == ProbeResult::Success) {
      ++w->successes;
      w->failures = 0;
    } else if (o.result == ProbeResult::Failure) {
      ++w->failures;
      w->successes = 0;
    } else {
      return;  // an unknown result changes nothing
    }
    const ProbeResult before = w->result;
    if (o.result == ProbeResult::Success && w->successes >= w->probe.success_threshold)
      w->result = ProbeResult::Success;
    if (o.result == ProbeResult::Failure && w->failures >= w->probe.failure_threshold) {
      w->result = ProbeResult::Failure;
      if (kind == Kind::Readiness) c.seeded_ready = false;
      // A failed liveness/startup probe gets the container killed: hold until it is replaced.
      if (kind != Kind::Readiness) w->on_hold = true;
    }
    if (o.result == ProbeResult::Success && kind == Kind::Readiness &&
        w->result == ProbeResult::Success)
      c.seeded_ready = false;
    const bool changed = before != w->result;
    if (changed || o.result == ProbeResult::Failure)
      event = ProbeEvent{
          c.target->pod_uid, c.target->container_name, id, kind, w->result, o.output, changed};
  }
  if (event && sink_) sink_(*event);
}

std::map<std::string, Manager::Counters> Manager::counters() const {
  std::lock_guard g(mu_);
  return counters_;
}

}  // namespace nodelet::probes
