#include "agent/kube/client.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/core/log.h"
#include "agent/kube/curl_api.h"
#include "agent/kube/json_util.h"

namespace nodelet::kube {
namespace {

// Only called once curlApi() has succeeded (the Client checks it before any request).
const CurlApi& curl() { return **curlApi(); }

curl_blob blob(const std::string& s) {
  return curl_blob{const_cast<char*>(s.data()), s.size(), CURL_BLOB_NOCOPY};
}

size_t collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t header(char* data, size_t size, size_t n, void* user) {
  std::string_view line(data, size * n);
  constexpr std::string_view kRetry = "retry-after:";
  if (line.size() > kRetry.size()) {
    std::string lower(line.substr(0, kRetry.size()));
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower == kRetry) {
      try {
        *static_cast<int*>(user) = std::stoi(std::string(line.substr(kRetry.size())));
      } catch (...) {
        // An HTTP-date Retry-After: fall back to our own back-off.
      }
    }
  }
  return size * n;
}

bool retriable(long code) {
  return code == 429 || code == 500 || code == 502 || code == 503 || code == 504;
}

nlohmann::json statusBody(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (js::str(j, "kind") == "Status") return j;
  return nlohmann::json();
}

}  // namespace

std::string Response::reason() const {
  auto s = statusBody(body);
  return s.is_object() && s.contains("reason") && s["reason"].is_string()
             ? s["reason"].get<std::string>()
             : "";
}

std::string Response::message() const {
  auto s = statusBody(body);
  return s.is_object() && s.contains("message") && s["message"].is_string()
             ? s["message"].get<std::string>()
             : "";
}

std::string Response::describe() const {
  const auto status = statusBody(body);  // parsed once
  std::string m = js::str(status, "message"), r = js::str(status, "reason");
  if (m.empty()) m = body.substr(0, 200);
  return m + " (" + std::to_string(code) + (r.empty() ? "" : " " + r) + ")";
}

Error Response::toError(std::string_view context) const {
  ErrorCode c = ErrorCode::Unknown;
  switch (code) {
    case 400:
    case 422:
      c = ErrorCode::InvalidArgument;
      break;
    case 401:
    case 403:
      c = ErrorCode::PermissionDenied;
      break;
    case 404:
      c = ErrorCode::NotFound;
      break;
    case 409:
      c = reason() == "Conflict" ? ErrorCode::FailedPrecondition : ErrorCode::AlreadyExists;
      break;
    case 410:
      c = ErrorCode::FailedPrecondition;
      break;
    case 429:
      c = ErrorCode::ResourceExhausted;
      break;
    case 504:
      c = ErrorCode::DeadlineExceeded;
      break;
    default:
      c = code >= 500 ? ErrorCode::Unavailable : ErrorCode::Unknown;
  }
  return Error{c, std::string(context) + ": " + describe()};
}

// The libcurl state shared by every request: one connection cache, DNS cache and TLS session
// cache, so requests reuse connections whichever thread sends them.
struct Client::Curl {
  Curl() {
    if (!curlApi()) return;
    share = curl().share_init();
    curl().share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl().share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl().share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl().share_setopt(share, CURLSHOPT_USERDATA, this);
    curl().share_setopt(
        share, CURLSHOPT_LOCKFUNC, +[](CURL*, curl_lock_data d, curl_lock_access, void* u) {
          static_cast<Curl*>(u)->locks[static_cast<size_t>(d) % kLocks].lock();
        });
    curl().share_setopt(
        share, CURLSHOPT_UNLOCKFUNC, +[](CURL*, curl_lock_data d, void* u) {
          static_cast<Curl*>(u)->locks[static_cast<size_t>(d) % kLocks].unlock();
        });
  }
  ~Curl() {
    if (share) curl().share_cleanup(share);
  }
  static constexpr size_t kLocks = 8;
  CURLSH* share{nullptr};
  std::array<std::mutex, kLocks> locks;
};

Client::Client(KubeConfig config, Clock& clock, ClientOptions options)
    : config_(std::move(config)),
      clock_(clock),
      o_(std::move(options)),
      curl_(std::make_unique<Curl>()),
      tokens_(o_.burst),
      last_refill_(clock.monotonicNow()) {
  if (config_.insecure_skip_tls_verify)
    NODELET_LOG(warn, Api,
                "insecure-skip-tls-verify is set: the API server's certificate is NOT verified; "
                "anyone on the path can impersonate it");
}

Client::~Client() = default;

std::string Client::bearerToken() {
  if (config_.token_file.empty()) return config_.token;
  std::lock_guard g(mu_);
  const MonoTime now = clock_.monotonicNow();
  // Re-read a token file once a minute, as client-go does: the token may be rotated.
  if (!file_token_valid_ || now - file_token_read_ > std::chrono::minutes(1)) {
    std::ifstream in(config_.token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    if (in) {
      file_token_ = ss.str();
      while (!file_token_.empty() && std::isspace(static_cast<unsigned char>(file_token_.back())))
        file_token_.pop_back();
      file_token_valid_ = true;
    } else if (!file_token_valid_) {
      NODELET_LOG(warn, Api, "tokenFile {} cannot be read", config_.token_file);
    }
    file_token_read_ = now;
  }
  return file_token_.empty() ? config_.token : file_token_;
}

void Client::waitFor(Duration d) {
  const MonoTime until = clock_.monotonicNow() + d;
  std::unique_lock l(mu_);
  for (int i = 0; i < 1000 && clock_.monotonicNow() < until; ++i) clock_.waitUntil(cv_, l, until);
}

void Client::throttle() {
  if (o_.qps <= 0) return;
  Duration wait{0};
  {
    std::lock_guard g(mu_);
    const MonoTime now = clock_.monotonicNow();
    const double elapsed = std::chrono::duration<double>(now - last_refill_).count();
    tokens_ = std::min<double>(o_.burst, tokens_ + elapsed * o_.qps);
    last_refill_ = now;
    tokens_ -= 1;  // reserve ours; a negative balance is the queue ahead of us
    if (tokens_ < 0)
      wait = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(-tokens_ / o_.qps));
  }
  if (wait > Duration::zero()) waitFor(wait);
}

void Client::setClientCertificate(std::string cert_pem, std::string key_pem) {
  std::lock_guard g(mu_);
  config_.client_cert_pem = std::move(cert_pem);
  config_.client_key_pem = std::move(key_pem);
}

void* Client::newHandle(const std::string& url, curl_slist** headers) {
  CURL* h = curl().easy_init();
  if (!h) return nullptr;
  curl().easy_setopt(h, CURLOPT_SHARE, curl_->share);
  curl().easy_setopt(h, CURLOPT_URL, url.c_str());
  curl().easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl().easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
  curl().easy_setopt(
      h, CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(o_.connect_timeout).count()));
  curl().easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  if (!o_.user_agent.empty()) curl().easy_setopt(h, CURLOPT_USERAGENT, o_.user_agent.c_str());
  if (!config_.ca_pem.empty()) {
    curl_blob b = blob(config_.ca_pem);
    curl().easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
  }
  if (config_.insecure_skip_tls_verify) {
    curl().easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl().easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  std::string cert, key;
  {
    std::lock_guard g(mu_);
    cert = config_.client_cert_pem;
    key = config_.client_key_pem;
  }
  if (!cert.empty()) {
    // Copied by libcurl: the certificate may be replaced while this request runs.
    curl_blob c{cert.data(), cert.size(), CURL_BLOB_COPY};
    curl_blob k{key.data(), key.size(), CURL_BLOB_COPY};
    curl().easy_setopt(h, CURLOPT_SSLCERT_BLOB, &c);
    curl().easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    curl().easy_setopt(h, CURLOPT_SSLKEY_BLOB, &k);
    curl().easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
  *headers = curl().slist_append(*headers, "Accept: application/json");
  const std::string token = bearerToken();
  if (!token.empty())
    *headers = curl().slist_append(*headers, ("Authorization: Bearer " + token).c_str());
  return h;
}

Result<Response> Client::request(std::string_view method, const std::string& path,
                                 const std::string& body, std::string_view content_type) {
  const std::string url = config_.server + path;
  if (auto api = curlApi(); !api) return std::unexpected(api.error());
  Duration backoff = o_.retry_base;
  for (int attempt = 0;; ++attempt) {
    throttle();
    curl_slist* headers = nullptr;
    CURL* h = static_cast<CURL*>(newHandle(url, &headers));
    if (!h) return fail(ErrorCode::Internal, "curl_easy_init failed");
    Response r;
    curl().easy_setopt(h, CURLOPT_CUSTOMREQUEST, std::string(method).c_str());
    curl().easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");  // lists are large and compress well
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH" ||
        method == "DELETE") {
      headers =
          curl().slist_append(headers, ("Content-Type: " + std::string(content_type)).c_str());
      curl().easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
      curl().easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl().easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl().easy_setopt(
        h, CURLOPT_TIMEOUT_MS,
        static_cast<long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(o_.timeout).count()));
    curl().easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl().easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
    curl().easy_setopt(h, CURLOPT_HEADERFUNCTION, header);
    curl().easy_setopt(h, CURLOPT_HEADERDATA, &r.retry_after_seconds);
    const CURLcode rc = curl().easy_perform(h);
    curl().easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.code);
    curl().easy_cleanup(h);
    curl().slist_free_all(headers);
    const bool transport = rc != CURLE_OK;
    // TLS and certificate problems do not heal by retrying.
    const bool permanent = rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_PEER_FAILED_VERIFICATION ||
                           rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_URL_MALFORMAT ||
                           rc == CURLE_UNSUPPORTED_PROTOCOL;
    if (!transport && !retriable(r.code)) return r;
    if (permanent || attempt >= o_.max_retries) {
      if (!transport) return r;
      return fail(ErrorCode::Unavailable,
                  std::string(method) + " " + url + ": " + curl().easy_strerror(rc));
    }
    Duration wait = backoff;
    if (!transport && r.retry_after_seconds >= 0)
      wait =
          std::min<Duration>(std::chrono::seconds(r.retry_after_seconds), std::chrono::seconds(30));
    NODELET_LOG(debug, Api, "{} {}: {}; retrying in {} ms", method, path,
                transport ? curl().easy_strerror(rc) : r.describe(),
                std::chrono::duration_cast<std::chrono::milliseconds>(wait).count());
    waitFor(wait);
    backoff = std::min(backoff * 2, o_.retry_max);
  }
}

namespace {

struct StreamState {
  const std::function<bool(std::string_view)>* on_line;
  std::stop_token stop;
  std::string buf;
  std::string error_body;
  long code{0};
  CURL* h{nullptr};
  bool stopped{false};
};

size_t streamWrite(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<StreamState*>(user);
  const size_t len = size * n;
  if (s->code == 0) curl().easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->code);
  if (s->code != 200) {
    if (s->error_body.size() < (1 << 20)) s->error_body.append(data, len);
    return len;
  }
  s->buf.append(data, len);
  size_t start = 0;
  for (size_t nl; (nl = s->buf.find('\n', start)) != std::string::npos; start = nl + 1) {
    if (nl > start && !(*s->on_line)(std::string_view(s->buf).substr(start, nl - start))) {
      s->stopped = true;
      return 0;  // aborts the transfer
    }
  }
  s->buf.erase(0, start);
  if (s->buf.size() > (64u << 20)) return 0;  // one event over 64 MiB: garbage
  return len;
}

int streamProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* s = static_cast<StreamState*>(user);
  if (s->stop.stop_requested()) {
    s->stopped = true;
    return 1;
  }
  return 0;
}

}  // namespace

Result<StreamEnd> Client::stream(const std::string& path,
                                 const std::function<bool(std::string_view)>& on_line,
                                 std::stop_token stop, Duration max_duration) {
  if (auto api = curlApi(); !api) return std::unexpected(api.error());
  throttle();
  curl_slist* headers = nullptr;
  CURL* h = static_cast<CURL*>(newHandle(config_.server + path, &headers));
  if (!h) return fail(ErrorCode::Internal, "curl_easy_init failed");
  // No Accept-Encoding: a compressed stream may be held back by the compressor, and the API
  // server does not compress watches anyway.
  StreamState s{&on_line, stop, {}, {}, 0, h, false};
  curl().easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl().easy_setopt(
      h, CURLOPT_TIMEOUT_MS,
      static_cast<long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(max_duration).count()));
  curl().easy_setopt(h, CURLOPT_WRITEFUNCTION, streamWrite);
  curl().easy_setopt(h, CURLOPT_WRITEDATA, &s);
  curl().easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl().easy_setopt(h, CURLOPT_XFERINFOFUNCTION, streamProgress);
  curl().easy_setopt(h, CURLOPT_XFERINFODATA, &s);
  const CURLcode rc = curl().easy_perform(h);
  if (s.code == 0) curl().easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s.code);
  curl().easy_cleanup(h);
  curl().slist_free_all(headers);
  if (s.stopped) return StreamEnd{200, {}};
  if (rc == CURLE_OPERATION_TIMEDOUT && s.code == 200) return StreamEnd{200, {}};
  if (rc != CURLE_OK && rc != CURLE_PARTIAL_FILE && s.code != 200 && s.error_body.empty())
    return fail(ErrorCode::Unavailable, "watch " + path + ": " + curl().easy_strerror(rc));
  if (rc != CURLE_OK && s.code == 200 && rc != CURLE_PARTIAL_FILE && rc != CURLE_RECV_ERROR)
    return fail(ErrorCode::Unavailable, "watch " + path + ": " + curl().easy_strerror(rc));
  return StreamEnd{s.code, std::move(s.error_body)};
}

}  // namespace nodelet::kube
