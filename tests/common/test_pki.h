#pragma once
// A throw-away PKI for tests: a CA, a server certificate for 127.0.0.1/localhost and client
// certificates, made with the openssl command (EC P-256: fast). Everything lives in `dir`; a
// second TestPki on the same directory reuses the CA.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace nodelet::testing {

class TestPki {
 public:
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    if (std::filesystem::exists(path("ca.crt"))) return;  // already made: issue more from it
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-subj /CN=nodelet-test-ca -keyout " +
        path("ca.key") + " -out " + path("ca.crt"));
    issue("server", "/CN=kube-apiserver", "subjectAltName=IP:127.0.0.1,DNS:localhost");
  }
  // Issues <name>.crt/.key for `subject` ("/CN=system:node:n1/O=system:nodes").
  void issue(const std::string& name, const std::string& subject, const std::string& ext = "") {
    const std::string extfile = path(name + ".ext");
    { std::ofstream(extfile) << (ext.empty() ? "basicConstraints=CA:FALSE" : ext) << "\n"; }
    run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj '" + subject +
        "' -keyout " + path(name + ".key") + " -out " + path(name + ".csr"));
    run("openssl x509 -req -in " + path(name + ".csr") + " -CA " + path("ca.crt") + " -CAkey " +
        path("ca.key") + " -CAcreateserial -days 2 -extfile " + extfile + " -out " +
        path(name + ".crt"));
  }
  // Signs a PEM certificate request as a client certificate valid for `days`; "" on failure.
  std::string sign(const std::string& csr_pem, const std::string& name, int days) {
    { std::ofstream(path(name + ".csr")) << csr_pem; }
    {
      std::ofstream(path(name + ".ext")) << "basicConstraints=CA:FALSE\nkeyUsage=critical,"
                                            "digitalSignature\nextendedKeyUsage=clientAuth\n";
    }
    const bool ok =
        std::system(("openssl x509 -req -in " + path(name + ".csr") + " -CA " + path("ca.crt") +
                     " -CAkey " + path("ca.key") + " -CAcreateserial -days " +
                     std::to_string(days) + " -extfile " + path(name + ".ext") + " -out " +
                     path(name + ".crt") + " >/dev/null 2>&1")
                        .c_str()) == 0;
    return ok ? read(name + ".crt") : "";
  }
  std::string path(const std::string& file) const { return dir_ + "/" + file; }
  std::string read(const std::string& file) const {
    std::ifstream in(path(file));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  bool ok() const { return ok_; }

 private:
  void run(const std::string& cmd) {
    if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) ok_ = false;
  }
  std::string dir_;
  bool ok_{true};
};

}  // namespace nodelet::testing
