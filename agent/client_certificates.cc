#include "agent/client_certificates.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <condition_variable>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "agent/core/api_json.h"
#include "agent/core/base64.h"
#include "agent/core/files.h"
#include "agent/core/log.h"
#include "agent/kube/json_util.h"
#include "agent/kube/kubeconfig.h"
#include "agent/kube/reflector.h"
#include "agent/openssl_ptr.h"

namespace nodelet::agent {

namespace fs = std::filesystem;
using nlohmann::json;
namespace js = kube::js;

namespace {

constexpr char kSigner[] = "kubernetes.io/kube-apiserver-client-kubelet";
constexpr char kCurrent[] = "kubelet-client-current.pem";
constexpr char kKeyTmp[] = "kubelet-client.key.tmp";
constexpr char kCsrs[] = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
// An EC key: no "key encipherment" (the kubelet adds it for RSA keys only).
const std::vector<std::string> kUsages = {"digital signature", "client auth"};

using ssl::Bio;
using ssl::Cert;
using ssl::Key;
using ssl::Md;
using ssl::Req;

Bio readBio(const std::string& s) {
  return Bio(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

std::string drain(BIO* b) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

Key parseKey(const std::string& pem) {
  Bio b = readBio(pem);
  return Key(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
}

std::string base64Url(std::string_view raw) {
  std::string s = base64Encode(raw);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return s;
}

std::string subjectCn(const std::string& node) { return "system:node:" + node; }

// What the CSR's watch says: the certificate, a refusal, or nothing yet.
std::optional<Result<std::string>> outcomeOf(const json& csr, const std::string& uid) {
  if (!uid.empty() && js::meta(csr, "uid") != uid)
    return fail(ErrorCode::Cancelled, "csr " + js::meta(csr, "name") + " changed UIDs");
  const json& status = js::object(csr, "status");
  bool approved = false;
  for (const auto& c : js::array(status, "conditions")) {
    const std::string type = js::str(c, "type");
    if (js::str(c, "status") == "False") continue;
    const std::string why =
        "reason: " + js::str(c, "reason") + ", message: " + js::str(c, "message");
    if (type == "Denied")
      return fail(ErrorCode::PermissionDenied, "certificate signing request is denied, " + why);
    if (type == "Failed")
      return fail(ErrorCode::Internal, "certificate signing request failed, " + why);
    approved = approved || type == "Approved";
  }
  const std::string cert = js::str(status, "certificate");
  if (!approved || cert.empty()) return std::nullopt;
  auto pem = base64Decode(cert);
  if (!pem) return fail(ErrorCode::Internal, "the issued certificate is not base64");
  return *pem;
}

// Watches the CSR (list + watch of metadata.name=<name>, the reflector's rules) until it has an
// outcome, the deadline passes, or `stop`.
Result<std::string> waitForCertificate(kube::Client& client, Clock& clock, const std::string& name,
                                       const std::string& uid, MonoTime deadline,
                                       std::stop_token stop) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Result<std::string>> outcome;
  kube::ObjectStore store;
  kube::ReflectorOptions ro;
  ro.resource = "certificatesigningrequests";
  ro.kind = "CertificateSigningRequest";
  ro.collection = kCsrs;
  ro.field_selector = "metadata.name=" + name;
  ro.timeout_param = true;
  kube::Reflector reflector(client, clock, store, ro, [&](const std::vector<json>& objects) {
    for (const auto& csr : objects) {
      auto o = outcomeOf(csr, uid);
      std::lock_guard g(mu);
      if (o && !outcome) {
        outcome = std::move(o);
        cv.notify_all();
      }
    }
  });
  std::stop_source inner;
  std::stop_callback forward(stop, [&] {
    inner.request_stop();
    std::lock_guard g(mu);
    cv.notify_all();
  });
  std::jthread watcher([&reflector, token = inner.get_token()] { reflector.run(token); });
  {
    std::unique_lock l(mu);
    while (!outcome && !stop.stop_requested() && clock.monotonicNow() < deadline)
      clock.waitUntil(cv, l, deadline);
  }
  inner.request_stop();
  watcher.join();
  std::lock_guard g(mu);
  if (outcome) return std::move(*outcome);
  if (stop.stop_requested()) return fail(ErrorCode::Cancelled, "stopped while waiting for " + name);
  return fail(ErrorCode::DeadlineExceeded,
              "timed out waiting for certificate signing request " + name + " to be issued");
}

struct CreatedCsr {
  std::string name, uid;
};

// Creates the CSR (`name` empty: generateName "csr-", as rotation does), or finds the one a
// previous run created for the same key.
Result<CreatedCsr> requestCertificate(kube::Client& client, const std::string& name,
                                      const std::string& csr_pem, const std::string& key_pem) {
  const json meta = name.empty() ? json{{"generateName", "csr-"}} : json{{"name", name}};
  const json body = {
      {"apiVersion", "certificates.k8s.io/v1"},
      {"kind", "CertificateSigningRequest"},
      {"metadata", meta},
      {"spec", {{"request", base64Encode(csr_pem)}, {"signerName", kSigner}, {"usages", kUsages}}}};
  auto r = client.request("POST", kCsrs, body.dump());
  if (!r) return std::unexpected(r.error().wrap("create certificate signing request " + name));
  if (r->ok()) {
    const json got = json::parse(r->body, nullptr, false);
    return CreatedCsr{js::meta(got, "name"), js::meta(got, "uid")};
  }
  if (r->code != 409 || name.empty())
    return std::unexpected(r->toError("create certificate signing request " + name));
  // Already there: ours if it carries our key and asks the same signer.
  auto cur = client.get(std::string(kCsrs) + "/" + name);
  if (!cur) return std::unexpected(cur.error().wrap("get certificate signing request " + name));
  if (!cur->ok()) return std::unexpected(cur->toError("get certificate signing request " + name));
  const json got = json::parse(cur->body, nullptr, false);
  const json& spec = js::object(got, "spec");
  auto request = base64Decode(js::str(spec, "request"));
  if (!request || !bootstrap::sameKey(*request, key_pem) || js::str(spec, "signerName") != kSigner)
    return fail(ErrorCode::AlreadyExists, "certificate signing request " + name +
                                              " exists and is not compatible with this key");
  return CreatedCsr{name, js::meta(got, "uid")};
}

// Asks for a certificate for the key (the CSR's creation retried with back-off while the API
// server cannot be reached: a node may boot with it) and waits until it is issued, refused,
// `deadline` or `stop`.
Result<std::string> obtainCertificate(kube::Client& client, Clock& clock,
                                      const std::string& key_pem, const std::string& node,
                                      const std::string& name, MonoTime deadline,
                                      std::stop_token stop) {
  auto csr = bootstrap::makeCsr(key_pem, node);
  if (!csr) return std::unexpected(csr.error());
  CreatedCsr created;
  for (Duration backoff = std::chrono::seconds(1);;) {
    auto r = requestCertificate(client, name, *csr, key_pem);
    if (r) {
      created = *r;
      break;
    }
    if (r.error().is(ErrorCode::AlreadyExists) || r.error().is(ErrorCode::PermissionDenied) ||
        r.error().is(ErrorCode::InvalidArgument))
      return std::unexpected(r.error());
    if (stop.stop_requested() || clock.monotonicNow() + backoff >= deadline)
      return std::unexpected(r.error());
    NODELET_LOG(warn, Api, "{}; retrying in {} s", r.error().message,
                std::chrono::duration_cast<std::chrono::seconds>(backoff).count());
    clock.sleepUntil(clock.monotonicNow() + backoff, stop);
    backoff = std::min(backoff * 2, Duration(std::chrono::seconds(30)));
  }
  NODELET_LOG(info, Api, "waiting for certificate signing request {} to be approved and issued",
              created.name);
  auto cert = waitForCertificate(client, clock, created.name, created.uid, deadline, stop);
  if (!cert) return std::unexpected(cert.error());
  if (!bootstrap::certificatesValid(*cert, clock.systemNow()))
    return fail(ErrorCode::Internal,
                "the certificate issued for " + created.name + " is not valid now");
  return cert;
}

// The key alone, SEC1 PEM (a certificate file holds the certificate too).
Result<std::string> keyOnly(const std::string& pem) {
  Key key = parseKey(pem);
  Bio out(BIO_new(BIO_s_mem()));
  if (!key || !out ||
      PEM_write_bio_PrivateKey_traditional(out.get(), key.get(), nullptr, nullptr, 0, nullptr,
                                           nullptr) != 1)
    return fail(ErrorCode::Internal, "encode the private key");
  return drain(out.get());
}

std::string kubeconfigYaml(const kube::KubeConfig& boot, const std::string& pem_path) {
  // The kubelet's shape (default-cluster, default-auth, default-context).
  std::string out = "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n";
  if (!boot.ca_pem.empty())
    out += "    certificate-authority-data: " + base64Encode(boot.ca_pem) + "\n";
  if (boot.insecure_skip_tls_verify) out += "    insecure-skip-tls-verify: true\n";
  out += "    server: " + boot.server + "\n  name: default-cluster\n";
  out +=
      "contexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n"
      "    user: default-auth\n  name: default-context\n";
  out += "current-context: default-context\npreferences: {}\n";
  out += "users:\n- name: default-auth\n  user:\n    client-certificate: " + pem_path +
         "\n    client-key: " + pem_path + "\n";
  return out;
}

}  // namespace

namespace bootstrap {

bool certificatesValid(const std::string& pem, SysTime now) {
  Bio b = readBio(pem);
  if (!b) return false;
  const time_t t = std::chrono::system_clock::to_time_t(now);
  size_t n = 0;
  for (;; ++n) {
    Cert c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
    if (!c) break;
    if (X509_cmp_time(X509_get0_notAfter(c.get()), const_cast<time_t*>(&t)) <= 0) return false;
    if (X509_cmp_time(X509_get0_notBefore(c.get()), const_cast<time_t*>(&t)) > 0) return false;
  }
  ERR_clear_error();  // the end of the PEM stream reads as an error
  return n > 0;
}

std::optional<std::pair<SysTime, SysTime>> validity(const std::string& pem) {
  Bio b = readBio(pem);
  Cert c(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  if (!c) return std::nullopt;
  const auto when = [](const ASN1_TIME* t) -> std::optional<SysTime> {
    std::tm tm{};
    if (ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
  };
  auto from = when(X509_get0_notBefore(c.get()));
  auto to = when(X509_get0_notAfter(c.get()));
  if (!from || !to) return std::nullopt;
  return std::pair{*from, *to};
}

Result<std::string> newKey() {
  Key key(EVP_EC_gen("P-256"));
  Bio out(BIO_new(BIO_s_mem()));
  if (!key || !out) return fail(ErrorCode::Internal, "generate a private key");
  // SEC1 "EC PRIVATE KEY", as the kubelet writes it.
  if (PEM_write_bio_PrivateKey_traditional(out.get(), key.get(), nullptr, nullptr, 0, nullptr,
                                           nullptr) != 1)
    return fail(ErrorCode::Internal, "encode the private key");
  return drain(out.get());
}

Result<std::string> makeCsr(const std::string& key_pem, const std::string& node_name) {
  Key key = parseKey(key_pem);
  if (!key) return fail(ErrorCode::InvalidArgument, "the private key does not parse");
  Req req(X509_REQ_new());
  Bio out(BIO_new(BIO_s_mem()));
  if (!req || !out) return fail(ErrorCode::Internal, "certificate request: out of memory");
  X509_REQ_set_version(req.get(), 0);
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  const std::string cn = subjectCn(node_name);
  // Go's pkix.Name order: O before CN.
  X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("system:nodes"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  if (X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0 ||
      PEM_write_bio_X509_REQ(out.get(), req.get()) != 1)
    return fail(ErrorCode::Internal, "sign the certificate request");
  return drain(out.get());
}

Result<std::string> csrName(const std::string& key_pem, const std::string& node_name) {
  Key key = parseKey(key_pem);
  if (!key) return fail(ErrorCode::InvalidArgument, "the private key does not parse");
  unsigned char* der = nullptr;
  const int der_len = i2d_PUBKEY(key.get(), &der);
  if (der_len <= 0) return fail(ErrorCode::Internal, "encode the public key");
  const std::string public_key(reinterpret_cast<char*>(der), static_cast<size_t>(der_len));
  OPENSSL_free(der);
  // The kubelet's digestedName: SHA-512/256 over each part base64url-encoded and '|'-ended.
  std::string stream;
  for (const std::string& part :
       std::vector<std::string>{public_key, subjectCn(node_name), "system:nodes"})
    stream += base64Url(part) + "|";
  for (const auto& u : kUsages) stream += base64Url(u) + "|";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  Md md(EVP_MD_CTX_new());
  if (!md || EVP_DigestInit_ex(md.get(), EVP_sha512_256(), nullptr) != 1 ||
      EVP_DigestUpdate(md.get(), stream.data(), stream.size()) != 1 ||
      EVP_DigestFinal_ex(md.get(), digest, &n) != 1)
    return fail(ErrorCode::Internal, "digest the certificate request");
  return "node-csr-" + base64Url(std::string_view(reinterpret_cast<char*>(digest), n));
}

bool sameKey(const std::string& request_pem, const std::string& key_pem) {
  Bio b = readBio(request_pem);
  Req req(b ? PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr) : nullptr);
  Key key = parseKey(key_pem);
  if (!req || !key) return false;
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  return pub && EVP_PKEY_eq(pub, key.get()) == 1;
}

}  // namespace bootstrap

Result<std::string> storeClientCertificate(const std::string& cert_dir, const std::string& cert_pem,
                                           const std::string& key_pem, SysTime now) {
  // kubelet-client-<time>.pem (certificate, then key), then the symlink swapped atomically.
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d-%H-%M-%S", &tm);
  const std::string file = "kubelet-client-" + std::string(stamp) + ".pem";
  std::string pem = cert_pem;
  if (!pem.ends_with('\n')) pem += '\n';
  if (auto s = writeFileAtomic(cert_dir + "/" + file, pem + key_pem, 0600, true); !s)
    return std::unexpected(s.error());
  const std::string current = cert_dir + "/" + kCurrent;
  const std::string link_tmp = current + ".tmp";
  std::error_code ec;
  fs::remove(link_tmp, ec);
  fs::create_symlink(file, link_tmp, ec);
  if (!ec) fs::rename(link_tmp, current, ec);
  if (ec) return fail(ErrorCode::Internal, "link " + current + ": " + ec.message());
  return current;
}

ClientCertificateRotator::ClientCertificateRotator(kube::Client& client, Clock& clock,
                                                   std::string cert_dir, std::string node_name,
                                                   std::string cert_pem, OnRotated on_rotated,
                                                   uint64_t seed)
    : client_(client),
      clock_(clock),
      cert_dir_(std::move(cert_dir)),
      node_(std::move(node_name)),
      on_rotated_(std::move(on_rotated)),
      cert_pem_(std::move(cert_pem)) {
  // The kubelet's jitteryDuration: wait.Jitter(lifetime, 0.2) - 0.3 * lifetime.
  uint64_t x = seed ? seed : static_cast<uint64_t>(clock.systemNow().time_since_epoch().count());
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  fraction_ = 0.7 + 0.2 * static_cast<double>(x % 1'000'000) / 1'000'000.0;
}

std::optional<SysTime> ClientCertificateRotator::due() const {
  std::lock_guard g(mu_);
  auto v = bootstrap::validity(cert_pem_);
  if (!v) return std::nullopt;
  const auto lifetime = v->second - v->first;
  return v->first + std::chrono::duration_cast<SysTime::duration>(lifetime * fraction_);
}

Status ClientCertificateRotator::rotate(std::stop_token stop, Duration timeout) {
  auto key = bootstrap::newKey();  // a new key each time, as the kubelet's
  if (!key) return std::unexpected(key.error());
  auto cert =
      obtainCertificate(client_, clock_, *key, node_, "", clock_.monotonicNow() + timeout, stop);
  if (!cert) return std::unexpected(cert.error().wrap("rotate the client certificate"));
  std::error_code ec;
  fs::create_directories(cert_dir_, ec);
  auto current = storeClientCertificate(cert_dir_, *cert, *key, clock_.systemNow());
  if (!current) return std::unexpected(current.error());
  {
    std::lock_guard g(mu_);
    cert_pem_ = *cert;
  }
  if (auto v = bootstrap::validity(*cert))
    NODELET_LOG(info, Api, "client certificate rotated ({}), valid until {}", *current,
                api::formatTime(v->second));
  on_rotated_(*cert, *key);
  return {};
}

void ClientCertificateRotator::run(std::stop_token stop) {
  Duration backoff = std::chrono::seconds(1);
  while (!stop.stop_requested()) {
    const auto when = due();
    if (!when) {
      NODELET_LOG(warn, Api, "the client certificate does not parse: not rotating it");
      return;
    }
    NODELET_LOG(info, Api, "client certificate rotation due at {}", api::formatTime(*when));
    // Due on the wall clock: waited for in steps of at most an hour (the wall clock may jump).
    while (clock_.systemNow() < *when) {
      const auto step = std::min<Duration>(
          std::chrono::duration_cast<Duration>(*when - clock_.systemNow()), std::chrono::hours(1));
      if (!clock_.sleepUntil(clock_.monotonicNow() + step, stop)) return;
    }
    auto s = rotate(stop);
    if (s) {
      backoff = std::chrono::seconds(1);
      continue;
    }
    if (stop.stop_requested()) return;
    NODELET_LOG(warn, Api, "{}; retrying in {} s", s.error().message,
                std::chrono::duration_cast<std::chrono::seconds>(backoff).count());
    if (!clock_.sleepUntil(clock_.monotonicNow() + backoff, stop)) return;
    backoff = std::min<Duration>(backoff * 2, std::chrono::minutes(5));
  }
}

Status bootstrapClientCertificate(const ClientBootstrapOptions& o, Clock& clock,
                                  std::stop_token stop) {
  if (auto kc = kube::loadKubeconfig(o.kubeconfig);
      kc && bootstrap::certificatesValid(kc->client_cert_pem, clock.systemNow())) {
    NODELET_LOG(info, Api, "client certificate in {} is valid: no bootstrap needed", o.kubeconfig);
    return {};
  }
  auto boot = kube::loadKubeconfig(o.bootstrap_kubeconfig);
  if (!boot) return std::unexpected(boot.error().wrap("--bootstrap-kubeconfig"));
  std::error_code ec;
  fs::create_directories(o.cert_dir, ec);
  if (ec) return fail(ErrorCode::Internal, "--cert-dir " + o.cert_dir + ": " + ec.message());
  const std::string key_tmp = o.cert_dir + "/" + kKeyTmp;
  // The key: the current certificate's (a renewal keeps it), else the one a previous attempt
  // left, else a new one, kept until the certificate is issued.
  std::string key_pem;
  if (const std::string pem = readFile(o.cert_dir + "/" + kCurrent); parseKey(pem)) key_pem = pem;
  if (key_pem.empty()) {
    if (const std::string pem = readFile(key_tmp); parseKey(pem)) key_pem = pem;
  }
  if (key_pem.empty()) {
    auto k = bootstrap::newKey();
    if (!k) return std::unexpected(k.error());
    if (auto s = writeFileAtomic(key_tmp, *k, 0600, true); !s) return s;
    key_pem = *k;
  }
  auto key = keyOnly(key_pem);
  if (!key) return std::unexpected(key.error());
  auto name = bootstrap::csrName(*key, o.node_name);
  if (!name) return std::unexpected(name.error());
  kube::Client client(*boot, clock, o.client);
  auto cert = obtainCertificate(client, clock, *key, o.node_name, *name,
                                clock.monotonicNow() + o.timeout, stop);
  if (!cert) return std::unexpected(cert.error());
  auto current = storeClientCertificate(o.cert_dir, *cert, *key, clock.systemNow());
  if (!current) return std::unexpected(current.error());
  fs::remove(key_tmp, ec);
  fs::create_directories(fs::path(o.kubeconfig).parent_path(), ec);
  if (auto s = writeFileAtomic(o.kubeconfig, kubeconfigYaml(*boot, *current), 0600, true); !s)
    return s;
  NODELET_LOG(info, Api, "client certificate issued ({}); wrote {}", *current, o.kubeconfig);
  return {};
}

}  // namespace nodelet::agent
