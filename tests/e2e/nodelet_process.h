#pragma once
// Runs the nodelet binary as a child process against the rig, in its own temp directories and
// as its own node name (so tests never see each other's pods), and reads what it reports.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cri/runtime_service.h"
#include "tests/common/temp_dir.h"
#include "tests/e2e/e2e_env.h"

namespace nodelet::e2e {

class NodeletProcess {
 public:
  NodeletProcess() : node_("e2e-" + randomSuffix()) {
    std::filesystem::create_directories(manifests());
    cri::GrpcOptions o;
    o.endpoint = env("NODELET_E2E_CRI_ENDPOINT");
    o.request_timeout = std::chrono::seconds(30);
    auto s = cri::connectGrpc(o, o);
    if (s) runtime_ = std::move(s->runtime);
  }
  ~NodeletProcess() {
    stop(SIGTERM);
    cleanup();
  }

  const std::string& node() const { return node_; }
  std::filesystem::path manifests() const { return dir_.path() / "manifests"; }
  std::filesystem::path root() const { return dir_.path() / "root"; }
  std::filesystem::path logLinks() const { return dir_.path() / "containers"; }
  std::filesystem::path logs() const { return dir_.path() / "logs"; }
  cri::RuntimeService& runtime() { return *runtime_; }
  // Flags added to the command line at the next start().
  std::vector<std::string> extra_args;
  // Environment added at the next start(); a value "$PID" becomes nodelet's pid.
  std::map<std::string, std::string> extra_env;

  void start(const std::string& extra_config = "", int verbosity = 2) {
    const auto cfg = dir_.write(
        "config.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "podLogsDir: " +
            logs().string() + "\nfailSwapOn: false\nhealthzPort: 0\n" +
            // No node server on 10250 unless a test asks: nodelets run side by side.
            (extra_config.find("port:") == 0 || extra_config.find("\nport:") != std::string::npos
                 ? ""
                 : "port: 0\n") +
            extra_config);
    const std::string log = (dir_.path() / "nodelet.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      for (const auto& [k, v] : extra_env)
        ::setenv(k.c_str(), v == "$PID" ? std::to_string(::getpid()).c_str() : v.c_str(), 1);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      const std::string cgroup_root =
          "--cgroup-root=" + env("NODELET_E2E_CGROUP_PARENT", "/nodelet-rig");
      const std::string endpoint =
          "--container-runtime-endpoint=" + env("NODELET_E2E_CRI_ENDPOINT");
      const std::string path = "--pod-manifest-path=" + manifests().string();
      const std::string rootdir = "--root-dir=" + root().string();
      const std::string name = "--hostname-override=" + node_;
      const std::string config = "--config=" + cfg.string();
      const std::string v = "-v=" + std::to_string(verbosity);
      // Log links in the test's own directory, not the host's /var/log/containers.
      const std::string links = "--container-log-links-dir=" + logLinks().string();
      std::vector<std::string> args = {NODELET_BINARY, config,      path, endpoint, rootdir,
                                       name,           cgroup_root, v,    links};
      args.insert(args.end(), extra_args.begin(), extra_args.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(NODELET_BINARY, argv.data());
      ::_exit(127);
    }
  }
  pid_t pid() const { return pid_; }
  void stop(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  std::string log() const {
    std::ifstream in(dir_.path() / "nodelet.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // The pod named <name>-<node> in nodelet's status snapshot.
  std::optional<nlohmann::json> pod(const std::string& name) const {
    std::ifstream in(root() / "status" / "pods.json");
    std::stringstream ss;
    ss << in.rdbuf();
    auto list = nlohmann::json::parse(ss.str(), nullptr, false);
    if (!list.is_object() || !list.contains("items")) return std::nullopt;
    for (const auto& p : list["items"])
      if (p["metadata"]["name"] == name + "-" + node_) return p;
    return std::nullopt;
  }
  std::string phase(const std::string& name) const {
    auto p = pod(name);
    return p ? p->value("status", nlohmann::json::object()).value("phase", "") : "";
  }
  // The first container status of that name (app or init).
  std::optional<nlohmann::json> container(const std::string& pod_name, const std::string& c) const {
    auto p = pod(pod_name);
    if (!p) return std::nullopt;
    for (const char* list : {"containerStatuses", "initContainerStatuses"})
      for (const auto& s :
           p->value("status", nlohmann::json::object()).value(list, nlohmann::json::array()))
        if (s["name"] == c) return s;
    return std::nullopt;
  }
  // A container's log file (CRI format lines), "" until it exists.
  // Whether the app container's log comes to hold `needle` within 20 s.
  bool containerLogHas(const std::string& pod_name, const std::string& needle) const {
    return waitFor([&] { return containerLog(pod_name).find(needle) != std::string::npos; },
                   std::chrono::seconds(20));
  }
  std::string containerLog(const std::string& pod_name, const std::string& c = "app") const {
    auto p = pod(pod_name);
    if (!p) return "";
    std::ifstream in(
        logs() /
        ("default_" + pod_name + "-" + node_ + "_" + (*p)["metadata"]["uid"].get<std::string>()) /
        c / "0.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  bool running(const std::string& pod_name, const std::string& c) const {
    auto s = container(pod_name, c);
    return s && s->contains("state") && (*s)["state"].contains("running");
  }

  // What the runtime holds for this node.
  std::vector<cri::Container> containers() {
    auto r = runtime_->listContainers({.label_selector = {{"nodelet.io/node", node_}}});
    return r.value_or(std::vector<cri::Container>{});
  }
  std::vector<cri::PodSandbox> sandboxes() {
    auto r = runtime_->listPodSandbox({.label_selector = {{"nodelet.io/node", node_}}});
    return r.value_or(std::vector<cri::PodSandbox>{});
  }
  std::set<std::string> containerIds() {
    std::set<std::string> ids;
    for (const auto& c : containers()) ids.insert(c.id);
    return ids;
  }

  void write(const std::string& file, const std::string& content) {
    // Written elsewhere and renamed in, as editors and config tools do.
    const auto tmp = manifests() / ("." + file + ".tmp");
    std::ofstream(tmp) << content;
    std::filesystem::rename(tmp, manifests() / file);
  }
  void remove(const std::string& file) { std::filesystem::remove(manifests() / file); }

 private:
  void cleanup() {
    if (!runtime_) return;
    for (const auto& s : sandboxes()) {
      (void)runtime_->stopPodSandbox(s.id);
      (void)runtime_->removePodSandbox(s.id);
    }
  }

  testing::TempDir dir_;
  std::string node_;
  pid_t pid_{-1};
  cri::RuntimeServicePtr runtime_;
};

}  // namespace nodelet::e2e
