#pragma once
// A fake kube-apiserver that follows the real protocol for everything nodelet uses, held to
// ../shared/spec (API-FACTS.md and the recorded kubelet <-> kube-apiserver v1.32 traffic):
//   - TLS with x509 client certificates (CN=system:node:<n>, O=system:nodes) and bearer tokens;
//     anonymous requests get 401; the NodeRestriction checks nodelet relies on get 403.
//   - nodes, pods, leases (coordination.k8s.io/v1), events, configmaps, secrets and the
//     serviceaccounts/token subresource (TokenRequest), with the nodes/status and
//     pods/status subresources; create/get/update/delete with 404/409/422 Status bodies in the
//     real messages; optimistic concurrency on resourceVersion; graceful pod deletion
//     (deletionTimestamp, then removal on a grace-0 delete with a UID precondition).
//   - PATCH: strategic-merge (conditions merged by type, $setElementOrder, $patch) and merge
//     patch; anything else is 415.
//   - list and watch with fieldSelector, resourceVersion semantics, bookmarks, timeoutSeconds,
//     410 Expired (HTTP 410 on a list, an ERROR event on a watch) after compact(), chunked
//     streaming with one JSON event per line.
//   - discovery and server-side Tables, so kubectl get nodes / pods -o wide works against it.
//   - faults: failNext (an HTTP error, with Retry-After), stall, dropWatches, garbage on a watch,
//     and an outage (stop listening, then come back on the same port).
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/core/clock.h"

namespace httplib {
class Server;
}

namespace nodelet::testing {

class FakeApiServer {
 public:
  struct Recorded {
    std::string method;
    std::string path;
    std::string query;  // raw, as sent
    std::string content_type;
    std::string body;
    std::string user;
    std::string user_agent;
    int code{0};
    MonoTime at;  // when it was answered, on the server's clock
  };

  // PKI files (ca.crt, server.crt/key) are made in `dir`. The clock stamps objects and times
  // watches (timeoutSeconds, bookmarks).
  FakeApiServer(std::string dir, Clock& clock);
  ~FakeApiServer();
  FakeApiServer(const FakeApiServer&) = delete;
  FakeApiServer& operator=(const FakeApiServer&) = delete;

  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::string caFile() const;
  // A kubeconfig for node `node` with a client certificate, written to `path`.
  std::string writeNodeKubeconfig(const std::string& path, const std::string& node);
  // A kubeconfig with a bearer token (the token is accepted for `user`), written to `path`.
  std::string writeTokenKubeconfig(const std::string& path, const std::string& token,
                                   const std::string& user);

  // ---- the store ----
  // Creates as a client would (POST semantics; uid, resourceVersion, timestamps assigned).
  nlohmann::json create(const std::string& resource, const std::string& ns, nlohmann::json obj);
  std::optional<nlohmann::json> get(const std::string& resource, const std::string& ns,
                                    const std::string& name) const;
  std::vector<nlohmann::json> list(const std::string& resource) const;
  // Replaces an object as an admin would (no precondition), bumping its resourceVersion.
  void put(const std::string& resource, const std::string& ns, nlohmann::json obj);
  // A graceful delete as kubectl delete does it (pods bound to a node get a deletionTimestamp;
  // everything else is removed at once).
  void remove(const std::string& resource, const std::string& ns, const std::string& name,
              std::optional<int64_t> grace_seconds = std::nullopt);
  std::string resourceVersion() const;
  // kube-controller-manager's part in TLS bootstrapping: approve CSR `name`, then sign it with
  // the fake's CA for `days` (the subject is the request's). False if there is no such CSR.
  bool issueCsr(const std::string& name, int days = 1);
  bool denyCsr(const std::string& name, const std::string& message);

  // ---- observation ----
  std::vector<Recorded> requests() const;
  void clearRequests();
  size_t openWatches() const { return open_watches_.load(); }
  // Delegated authorization: `user` may `verb` nodes/`subresource` (SubjectAccessReview).
  void allow(const std::string& user, const std::string& verb, const std::string& subresource) {
    std::lock_guard g(mu_);
    allowed_.insert(user + "|" + verb + "|nodes/" + subresource);
  }
  uint64_t accessReviews() const {
    std::lock_guard g(mu_);
    return access_reviews_;
  }
  uint64_t tokensIssued() const {
    std::lock_guard g(mu_);
    return tokens_issued_;
  }

  // ---- faults ----
  // The next `count` requests matching method (or "*") and path prefix get `code`.
  void failNext(const std::string& method, const std::string& path_prefix, int code, int count = 1,
                int retry_after = -1);
  // Requests hang for `d` (real time) before being answered, until stall(0).
  void stall(Duration d);
  // Ends every open watch stream (EOF, as a restarting API server does).
  void dropWatches();
  // The next event on each open watch is a line of garbage.
  void garbageOnWatches();
  // Forgets history: a watch or exact list from an older resourceVersion gets 410 Expired.
  void compact();
  // An outage: stop listening (connections refused), then come back on the same port.
  void goDown();
  bool comeBack();

 private:
  struct Stored {
    nlohmann::json obj;
  };
  struct HistoryEvent {
    uint64_t rv;
    std::string type;
    std::string resource;
    nlohmann::json obj;
  };
  struct Fault {
    std::string method, prefix;
    int code, count, retry_after;
  };
  class Handler;
  friend class Handler;

  bool listen(int port);
  std::string key(const std::string& resource, const std::string& ns,
                  const std::string& name) const;
  nlohmann::json stampLocked(const std::string& resource, nlohmann::json obj, bool create);
  void recordLocked(const std::string& type, const std::string& resource,
                    const nlohmann::json& obj);
  nlohmann::json createLocked(const std::string& resource, const std::string& ns,
                              nlohmann::json obj);

  std::string dir_;
  Clock& clock_;
  std::unique_ptr<httplib::Server> server_;
  std::jthread thread_;
  int port_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Stored> objects_;  // "resource/ns/name"
  std::deque<HistoryEvent> history_;
  uint64_t rv_{100};
  uint64_t compacted_rv_{0};
  uint64_t uid_counter_{0};
  uint64_t watch_generation_{0};  // bumped by dropWatches
  uint64_t garbage_generation_{0};
  uint64_t tokens_issued_{0};
  uint64_t generated_{0};  // names made from metadata.generateName
  std::vector<Fault> faults_;
  Duration stall_{0};
  std::map<std::string, std::string> tokens_;  // token -> user
  std::set<std::string> allowed_;              // "user|verb|nodes/subresource"
  uint64_t access_reviews_{0};
  std::vector<Recorded> requests_;
  uint64_t requests_generation_{0};  // bumped by clearRequests()
  std::atomic<size_t> open_watches_{0};
  bool stopping_{false};
};

}  // namespace nodelet::testing
