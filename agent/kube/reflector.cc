#include "agent/kube/reflector.h"

#include "agent/core/log.h"
#include "agent/kube/json_util.h"

namespace nodelet::kube {
namespace {

using nlohmann::json;

std::string rvOf(const json& obj) { return js::meta(obj, "resourceVersion"); }

bool hasName(const json& obj) {
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

// Seconds as Go's time.Duration prints them: "9m59s", "44m24s", "1h0m0s".
std::string goDuration(int64_t secs) {
  std::string out;
  if (secs >= 3600) out += std::to_string(secs / 3600) + "h";
  if (secs >= 60) out += std::to_string(secs % 3600 / 60) + "m";
  return out + std::to_string(secs % 60) + "s";
}

}  // namespace

// ---- ObjectStore ----
std::string ObjectStore::keyOf(const json& pod) {
  return js::meta(pod, "namespace") + "/" + js::meta(pod, "name");
}

void ObjectStore::replace(std::map<std::string, json> objects) {
  std::lock_guard g(mu_);
  objects_ = std::move(objects);
}

void ObjectStore::upsert(const json& pod) {
  std::lock_guard g(mu_);
  objects_[keyOf(pod)] = pod;
}

void ObjectStore::erase(const std::string& key) {
  std::lock_guard g(mu_);
  objects_.erase(key);
}

void ObjectStore::updateWithReply(const json& pod) {
  if (!hasName(pod)) return;
  std::lock_guard g(mu_);
  auto it = objects_.find(keyOf(pod));
  if (it == objects_.end()) return;  // deleted meanwhile: the watch knows best
  if (js::meta(it->second, "uid") != js::meta(pod, "uid")) return;
  it->second = pod;
}

std::optional<json> ObjectStore::get(const std::string& ns, const std::string& name) const {
  std::lock_guard g(mu_);
  auto it = objects_.find(ns + "/" + name);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

std::vector<json> ObjectStore::all() const {
  std::lock_guard g(mu_);
  std::vector<json> out;
  out.reserve(objects_.size());
  for (const auto& [k, p] : objects_) out.push_back(p);
  return out;
}

// ---- Reflector ----
Reflector::Reflector(Client& client, Clock& clock, ObjectStore& store, ReflectorOptions options,
                     OnChange on_change)
    : client_(client),
      clock_(clock),
      store_(store),
      o_(std::move(options)),
      on_change_(std::move(on_change)),
      rng_(o_.seed ? o_.seed : 0x2545F4914F6CDD1Dull) {}

std::string Reflector::selector() const {
  return o_.field_selector.empty() ? "" : "fieldSelector=" + urlEncode(o_.field_selector) + "&";
}

bool Reflector::synced() const {
  std::lock_guard g(mu_);
  return synced_;
}

std::string Reflector::resourceVersion() const {
  std::lock_guard g(mu_);
  return rv_;
}

void Reflector::publish() {
  if (on_change_) on_change_(store_.all());
}

Duration Reflector::watchTimeout() {
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  const auto span = o_.max_watch_timeout - o_.min_watch_timeout;
  if (span <= Duration::zero()) return o_.min_watch_timeout;
  return o_.min_watch_timeout +
         Duration(static_cast<int64_t>(rng_ % static_cast<uint64_t>(span.count())));
}

void Reflector::waitFor(Duration d, std::stop_token stop) {
  clock_.sleepUntil(clock_.monotonicNow() + d, stop);
}

Status Reflector::list() {
  std::string want;
  {
    std::lock_guard g(mu_);
    want = list_rv_;
  }
  std::string path = o_.collection + "?" + selector() + "limit=500";
  if (!want.empty()) path += "&resourceVersion=" + urlEncode(want);
  ++lists_;
  auto r = client_.get(path);
  const std::string what = "list " + o_.resource;
  if (!r) return std::unexpected(r.error().wrap(what));
  if (r->code == 410 ||
      (r->code == 504 && r->message().find("Too large resource version") != std::string::npos)) {
    std::lock_guard g(mu_);
    list_rv_ = "";  // the version is gone (or not yet there): a consistent read next time
    return std::unexpected(r->toError(what));
  }
  if (!r->ok()) return std::unexpected(r->toError(what));
  json doc = json::parse(r->body, nullptr, false);
  if (!doc.is_object() || !doc.contains("items") || !doc["items"].is_array())
    return fail(ErrorCode::Internal, what + ": the reply is not a " + o_.kind + "List");
  std::map<std::string, json> objects;
  size_t skipped = 0;
  for (auto& item : doc["items"]) {
    if (!hasName(item)) {
      ++skipped;
      continue;
    }
    item["kind"] = o_.kind;  // list items carry no kind; watch objects do
    item["apiVersion"] = "v1";
    std::string key = ObjectStore::keyOf(item);
    objects[key] = std::move(item);
  }
  if (skipped) NODELET_LOG(warn, Api, "{}: skipped {} malformed item(s)", what, skipped);
  const std::string rv = js::meta(doc, "resourceVersion");
  store_.replace(std::move(objects));
  {
    std::lock_guard g(mu_);
    rv_ = rv;
    list_rv_ = rv;
    synced_ = true;
  }
  publish();
  return {};
}

Result<bool> Reflector::watch(std::stop_token stop) {
  const Duration timeout = watchTimeout();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
  std::string rv = resourceVersion();
  const std::string path = o_.collection + "?allowWatchBookmarks=true&" + selector() +
                           "resourceVersion=" + urlEncode(rv) +
                           (o_.timeout_param ? "&timeout=" + goDuration(secs) : "") +
                           "&timeoutSeconds=" + std::to_string(secs) + "&watch=true";
  bool relist = false;
  bool malformed = false;
  auto end = client_.stream(
      path,
      [&](std::string_view line) {
        json ev = json::parse(line, nullptr, false);
        if (!ev.is_object() || !ev.contains("type") || !ev["type"].is_string() ||
            !ev.contains("object") || !ev["object"].is_object()) {
          NODELET_LOG(warn, Api, "watch {}: malformed event ({} bytes): ending the watch",
                      o_.resource, line.size());
          malformed = true;
          return false;
        }
        const std::string type = ev["type"];
        json& obj = ev["object"];
        if (type == "ERROR") {
          const int64_t code = js::integer(obj, "code");
          const std::string reason = js::str(obj, "reason");
          NODELET_LOG(info, Api, "watch {}: {} ({} {})", o_.resource, js::str(obj, "message"), code,
                      reason);
          if (code == 410 || reason == "Expired" || reason == "Gone") relist = true;
          return false;
        }
        const std::string obj_rv = rvOf(obj);
        if (type == "BOOKMARK") {
          if (!obj_rv.empty()) rv = obj_rv;
          return true;
        }
        if (!hasName(obj)) {
          NODELET_LOG(warn, Api, "watch {}: {} event without a name: ending the watch", o_.resource,
                      type);
          malformed = true;
          return false;
        }
        if (type == "ADDED" || type == "MODIFIED") {
          store_.upsert(obj);
        } else if (type == "DELETED") {
          store_.erase(ObjectStore::keyOf(obj));
        } else {
          NODELET_LOG(warn, Api, "watch {}: unknown event type {}", o_.resource, type);
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
    return std::unexpected(r.toError("watch " + o_.resource));
  }
  if (malformed) return fail(ErrorCode::Internal, "watch " + o_.resource + ": malformed event");
  return relist;
}

void Reflector::run(std::stop_token stop, bool listed) {
  Duration backoff = o_.initial_backoff;
  bool need_list = !listed;
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
