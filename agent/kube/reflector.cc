#include "agent/kube/pod_reflector.h"

#include "agent/core/log.h"
#include "agent/kube/json_util.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

std::string rvOf(const json& obj) { return js::meta(obj, "resourceVersion"); }

bool isPod(const json& obj) {
  return obj.is_object() && obj.contains("metadata") && obj["metadata"].is_object() &&
         obj["metadata"].contains("name") && obj["metadata"]["name"].is_string() &&
         !obj["metadata"]["name"].get<std::string>().empty();
}

std::string urlEncode(const std::string& s) {
  std::string out;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

}  // namespace

// ---- PodStore ----
std::string PodStore::keyOf(const json& pod) {
  return js::meta(pod, "namespace") + "/" + js::meta(pod, "name");
}

void PodStore::replace(std::map<std::string, json> pods) {
  std::lock_guard g(mu_);
  pods_ = std::move(pods);
}

void PodStore::upsert(const json& pod) {
  std::lock_guard g(mu_);
  pods_[keyOf(pod)] = pod;
}

void PodStore::erase(const std::string& key) {
  std::lock_guard g(mu_);
  pods_.erase(key);
}

void PodStore::updateWithReply(const json& pod) {
  if (!isPod(pod)) return;
  std::lock_guard g(mu_);
  auto it = pods_.find(keyOf(pod));
  if (it == pods_.end()) return;  // deleted meanwhile: the watch knows best
  if (js::meta(it->second, "uid") != js::meta(pod, "uid")) return;
  it->second = pod;
}

std::optional<json> PodStore::get(const std::string& ns, const std::string& name) const {
  std::lock_guard g(mu_);
  auto it = pods_.find(ns + "/" + name);
  if (it == pods_.end()) return std::nullopt;
  return it->second;
}

std::vector<json> PodStore::all() const {
  std::lock_guard g(mu_);
  std::vector<json> out;
  out.reserve(pods_.size());
  for (const auto& [k, p] : pods_) out.push_back(p);
  return out;
}

// ---- PodReflector ----
PodReflector::PodReflector(Client& client, Clock& clock, PodStore& store,
                           PodReflectorOptions options, OnChange on_change)
    : client_(client),
      clock_(clock),
      store_(store),
      o_(std::move(options)),
      on_change_(std::move(on_change)),
      rng_(o_.seed ? o_.seed : 0x2545F4914F6CDD1Dull) {}

std::string PodReflector::selector() const {
  return "fieldSelector=" + urlEncode("spec.nodeName=" + o_.node_name);
}

bool PodReflector::synced() const {
  std::lock_guard g(mu_);
  return synced_;
}

std::string PodReflector::resourceVersion() const {
  std::lock_guard g(mu_);
  return rv_;
}

void PodReflector::publish() {
  if (on_change_) on_change_(store_.all());
}

Duration PodReflector::watchTimeout() {
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  const auto span = o_.max_watch_timeout - o_.min_watch_timeout;
  if (span <= Duration::zero()) return o_.min_watch_timeout;
  return o_.min_watch_timeout +
         Duration(static_cast<int64_t>(rng_ % static_cast<uint64_t>(span.count())));
}

void PodReflector::waitFor(Duration d, std::stop_token stop) {
  const MonoTime until = clock_.monotonicNow() + d;
  std::unique_lock l(mu_);
  std::stop_callback wake(stop, [this] { cv_.notify_all(); });
  for (int i = 0; i < 10000 && !stop.stop_requested() && clock_.monotonicNow() < until; ++i)
    clock_.waitUntil(cv_, l, until);
}

Status PodReflector::list() {
  std::string want;
  {
    std::lock_guard g(mu_);
    want = list_rv_;
  }
  std::string path = "/api/v1/pods?" + selector() + "&limit=500";
  if (!want.empty()) path += "&resourceVersion=" + urlEncode(want);
  ++lists_;
  auto r = client_.get(path);
  if (!r) return std::unexpected(r.error().wrap("list pods"));
  if (r->code == 410 ||
      (r->code == 504 && r->message().find("Too large resource version") != std::string::npos)) {
    std::lock_guard g(mu_);
    list_rv_ = "";  // the version is gone (or not yet there): a consistent read next time
    return std::unexpected(r->toError("list pods"));
  }
  if (!r->ok()) return std::unexpected(r->toError("list pods"));
  json doc = json::parse(r->body, nullptr, false);
  if (!doc.is_object() || !doc.contains("items") || !doc["items"].is_array())
    return fail(ErrorCode::Internal, "list pods: the reply is not a PodList");
  std::map<std::string, json> pods;
  size_t skipped = 0;
  for (auto& item : doc["items"]) {
    if (!isPod(item)) {
      ++skipped;
      continue;
    }
    item["kind"] = "Pod";  // list items carry no kind; watch objects do
    item["apiVersion"] = "v1";
    std::string key = PodStore::keyOf(item);
    pods[key] = std::move(item);
  }
  if (skipped) NODELET_LOG(warn, Api, "list pods: skipped {} malformed item(s)", skipped);
  const std::string rv = js::meta(doc, "resourceVersion");
  store_.replace(std::move(pods));
  {
    std::lock_guard g(mu_);
    rv_ = rv;
    list_rv_ = rv;
    synced_ = true;
  }
  publish();
  return {};
}

Result<bool> PodReflector::watch(std::stop_token stop) {
  const Duration timeout = watchTimeout();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
  std::string rv = resourceVersion();
  const std::string path = "/api/v1/pods?allowWatchBookmarks=true&" + selector() +
                           "&resourceVersion=" + urlEncode(rv) +
                           "&timeoutSeconds=" + std::to_string(secs) + "&watch=true";
  bool relist = false;
  bool malformed = false;
  auto end = client_.stream(
      path,
      [&](std::string_view line) {
        json ev = json::parse(line, nullptr, false);
        if (!ev.is_object() || !ev.contains("type") || !ev["type"].is_string() ||
            !ev.contains("object") || !ev["object"].is_object()) {
          NODELET_LOG(warn, Api, "watch pods: malformed event ({} bytes): ending the watch",
                      line.size());
          malformed = true;
          return false;
        }
        const std::string type = ev["type"];
        json& obj = ev["object"];
        if (type == "ERROR") {
          const int64_t code = js::integer(obj, "code");
          const std::string reason = js::str(obj, "reason");
          NODELET_LOG(info, Api, "watch pods: {} ({} {})", js::str(obj, "message"), code, reason);
          if (code == 410 || reason == "Expired" || reason == "Gone") relist = true;
          return false;
        }
        const std::string obj_rv = rvOf(obj);
        if (type == "BOOKMARK") {
          if (!obj_rv.empty()) rv = obj_rv;
          return true;
        }
        if (!isPod(obj)) {
          NODELET_LOG(warn, Api, "watch pods: {} event without a pod name: ending the watch", type);
          malformed = true;
          return false;
        }
        if (type == "ADDED" || type == "MODIFIED") {
          store_.upsert(obj);
        } else if (type == "DELETED") {
          store_.erase(PodStore::keyOf(obj));
        } else {
          NODELET_LOG(warn, Api, "watch pods: unknown event type {}", type);
          return true;
        }
        if (!obj_rv.empty()) rv = obj_rv;
        {
          std::lock_guard g(mu_);
          rv_ = rv;
        }
        publish();
        return true;
      },
      stop, timeout + std::chrono::seconds(30));
  {
    std::lock_guard g(mu_);
    rv_ = rv;
    if (relist) list_rv_ = rv;  // list again from the last version first (C3)
  }
  if (!end) return std::unexpected(end.error());
  if (end->code != 200) {
    Response r{end->code, end->body, -1};
    if (end->code == 410) {
      std::lock_guard g(mu_);
      list_rv_ = rv;
      return true;
    }
    return std::unexpected(r.toError("watch pods"));
  }
  if (malformed) return fail(ErrorCode::Internal, "watch pods: malformed event");
  return relist;
}

void PodReflector::run(std::stop_token stop) {
  Duration backoff = o_.initial_backoff;
  bool need_list = true;
  for (uint64_t turn = 0; !stop.stop_requested() && turn < (1ull << 62); ++turn) {
    if (need_list) {
      if (auto s = list(); !s) {
        NODELET_LOG(warn, Api, "{}; retrying in {} ms", s.error().message,
                    std::chrono::duration_cast<std::chrono::milliseconds>(backoff).count());
        waitFor(backoff, stop);
        backoff = std::min(backoff * 2, o_.max_backoff);
        continue;
      }
      need_list = false;
      backoff = o_.initial_backoff;
    }
    auto w = watch(stop);
    if (stop.stop_requested()) break;
    if (!w) {
      NODELET_LOG(warn, Api, "{}; re-watching in {} ms", w.error().message,
                  std::chrono::duration_cast<std::chrono::milliseconds>(backoff).count());
      waitFor(backoff, stop);
      backoff = std::min(backoff * 2, o_.max_backoff);
      continue;
    }
    backoff = o_.initial_backoff;
    need_list = *w;
  }
}

}  // namespace nodelet::kube
