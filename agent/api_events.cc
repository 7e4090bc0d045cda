#include "agent/api_events.h"

#include <nlohmann/json.hpp>

#include "agent/core/api_json.h"
#include "agent/core/log.h"

namespace nodelet::agent {
namespace {

using nlohmann::json;

constexpr double kBurst = 25;
constexpr auto kRefill = std::chrono::minutes(5);
constexpr auto kAggregateWindow = std::chrono::minutes(10);

std::string objectKey(const ObjectRef& o) {
  return o.kind + "/" + o.namespace_ + "/" + o.name + "/" + o.uid;
}

}  // namespace

ApiEventRecorder::ApiEventRecorder(kube::Client& client, Clock& clock, LocalEventRecorder& local,
                                   std::string node_name)
    : client_(client), clock_(clock), local_(local), node_(std::move(node_name)) {}

ApiEventRecorder::~ApiEventRecorder() { stop(); }

void ApiEventRecorder::start() {
  thread_ = std::jthread([this](std::stop_token st) {
    std::stop_callback wake(st, [this] { cv_.notify_all(); });
    Duration backoff = std::chrono::seconds(1);
    for (uint64_t turn = 0; !st.stop_requested() && turn < (1ull << 62); ++turn) {
      std::optional<Pending> next;
      {
        std::unique_lock l(mu_);
        if (queue_.empty()) {
          clock_.waitUntil(cv_, l, clock_.monotonicNow() + std::chrono::minutes(1));
          continue;
        }
        next = queue_.front();
      }
      const bool done = send(*next);
      std::unique_lock l(mu_);
      if (done) {
        if (!queue_.empty()) queue_.pop_front();
        backoff = std::chrono::seconds(1);
      } else {  // the API server is away: keep the event, try again later
        clock_.waitUntil(cv_, l, clock_.monotonicNow() + backoff);
        backoff = std::min<Duration>(backoff * 2, std::chrono::seconds(30));
      }
    }
  });
}

void ApiEventRecorder::stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
}

uint64_t ApiEventRecorder::posted() const {
  std::lock_guard g(mu_);
  return posted_;
}

uint64_t ApiEventRecorder::patched() const {
  std::lock_guard g(mu_);
  return patched_;
}

bool ApiEventRecorder::allowed(const std::string& key, SysTime now) {
  auto [it, fresh] = tokens_.try_emplace(key, kBurst, now);
  auto& [tokens, last] = it->second;
  if (!fresh) {
    tokens = std::min(kBurst, tokens + std::chrono::duration<double>(now - last) / kRefill);
    last = now;
  }
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

void ApiEventRecorder::record(const ObjectRef& object, const std::string& type,
                              const std::string& reason, const std::string& message) {
  local_.record(object, type, reason, message);
  const SysTime now = clock_.systemNow();
  {
    std::lock_guard g(mu_);
    if (!allowed(objectKey(object), now)) return;
    if (queue_.size() >= kMaxQueued) {
      queue_.pop_front();
      ++dropped_;
    }
    queue_.push_back({object, type, reason, message, now});
  }
  cv_.notify_all();
}

bool ApiEventRecorder::send(const Pending& p) {
  const std::string ns = p.object.namespace_.empty() ? "default" : p.object.namespace_;
  const std::string key = objectKey(p.object) + "|" + p.object.field_path + "|" + p.type + "|" +
                          p.reason + "|" + p.message;
  std::optional<Seen> prev;
  {
    std::lock_guard g(mu_);
    auto it = seen_.find(key);
    if (it != seen_.end() && p.when - it->second.last < kAggregateWindow) prev = it->second;
    // Forget old aggregation entries now and then.
    if (seen_.size() > 4096)
      std::erase_if(seen_,
                    [&](const auto& kv) { return p.when - kv.second.last > kAggregateWindow; });
  }
  if (prev) {
    const json patch = {{"count", prev->count + 1},
                        {"lastTimestamp", api::formatTime(p.when)},
                        {"message", p.message}};
    auto r =
        client_.request("PATCH", "/api/v1/namespaces/" + prev->namespace_ + "/events/" + prev->name,
                        patch.dump(), "application/strategic-merge-patch+json");
    if (!r) return false;
    if (r->ok()) {
      std::lock_guard g(mu_);
      auto& s = seen_[key];
      s.count = prev->count + 1;
      s.last = p.when;
      ++patched_;
      return true;
    }
    if (r->code != 404) return true;  // an API error drops the event
    // 404: the event expired in the API server: post it anew.
  }
  const auto nanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(p.when.time_since_epoch()).count();
  char suffix[24];
  std::snprintf(suffix, sizeof suffix, ".%llx", static_cast<unsigned long long>(nanos));
  const std::string name = p.object.name + suffix;
  json involved = {{"kind", p.object.kind}, {"name", p.object.name}, {"apiVersion", "v1"}};
  if (!p.object.namespace_.empty()) involved["namespace"] = p.object.namespace_;
  involved["uid"] = p.object.kind == "Node" ? p.object.name : p.object.uid;
  if (!p.object.field_path.empty()) involved["fieldPath"] = p.object.field_path;
  const json ev = {{"kind", "Event"},
                   {"apiVersion", "v1"},
                   {"metadata", {{"name", name}, {"namespace", ns}}},
                   {"involvedObject", involved},
                   {"reason", p.reason},
                   {"message", p.message},
                   {"source", {{"component", "kubelet"}, {"host", node_}}},
                   {"firstTimestamp", api::formatTime(p.when)},
                   {"lastTimestamp", api::formatTime(p.when)},
                   {"count", 1},
                   {"type", p.type},
                   {"eventTime", nullptr},
                   {"reportingComponent", "kubelet"},
                   {"reportingInstance", node_}};
  auto r = client_.request("POST", "/api/v1/namespaces/" + ns + "/events", ev.dump());
  if (!r) return false;
  std::lock_guard g(mu_);
  if (r->ok()) {
    seen_[key] = {name, ns, 1, p.when, p.when};
    ++posted_;
  } else {
    ++dropped_;
    NODELET_LOG(debug, Api, "event {} dropped: {}", p.reason, r->describe());
  }
  return true;
}

int ApiEventRecorder::flush() {
  int n = 0;
  for (int i = 0; i < static_cast<int>(kMaxQueued); ++i) {
    std::optional<Pending> next;
    {
      std::lock_guard g(mu_);
      if (queue_.empty()) break;
      next = queue_.front();
    }
    if (!send(*next)) break;
    std::lock_guard g(mu_);
    if (!queue_.empty()) queue_.pop_front();
    ++n;
  }
  return n;
}

}  // namespace nodelet::agent
