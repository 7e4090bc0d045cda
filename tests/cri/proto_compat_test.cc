// Wire compatibility of nodelet's CRI proto with upstream cri-api.
//
// Compiles cri/proto/runtime/v1/api.proto and ../shared/spec/cri/<version>/api.proto into
// descriptor sets with protoc and compares them: every message, field, enum value and RPC that
// nodelet declares must exist upstream with the same number, type, type name, label and
// streaming flags. Skips (with a message) only when ../shared is absent.
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using google::protobuf::DescriptorProto;
using google::protobuf::EnumDescriptorProto;
using google::protobuf::FileDescriptorSet;

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "nodelet-proto-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Compiles `file` (relative to `include`) into a descriptor set.
FileDescriptorSet compile(const fs::path& include, const std::string& file, const fs::path& out) {
  const std::string cmd = std::string(NODELET_PROTOC) + " -I" + include.string() +
                          " --descriptor_set_out=" + out.string() + " " + file + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string output;
  char buf[512];
  while (p && fgets(buf, sizeof buf, p)) output += buf;
  const int rc = p ? pclose(p) : -1;
  EXPECT_EQ(rc, 0) << cmd << "\n" << output;
  FileDescriptorSet set;
  EXPECT_TRUE(set.ParseFromString(readFile(out)));
  return set;
}

struct Index {
  std::map<std::string, const DescriptorProto*> messages;
  std::map<std::string, const EnumDescriptorProto*> enums;
  std::map<std::string, const google::protobuf::MethodDescriptorProto*> methods;
};

void indexMessage(const std::string& scope, const DescriptorProto& m, Index& idx) {
  const std::string name = scope + "." + m.name();
  idx.messages[name] = &m;
  for (const auto& n : m.nested_type()) indexMessage(name, n, idx);
  for (const auto& e : m.enum_type()) idx.enums[name + "." + e.name()] = &e;
}

Index index(const FileDescriptorSet& set) {
  Index idx;
  for (const auto& f : set.file()) {
    const std::string scope = "." + f.package();
    for (const auto& m : f.message_type()) indexMessage(scope, m, idx);
    for (const auto& e : f.enum_type()) idx.enums[scope + "." + e.name()] = &e;
    for (const auto& s : f.service())
      for (const auto& m : s.method()) idx.methods[s.name() + "/" + m.name()] = &m;
  }
  return idx;
}

// Every difference between nodelet's declarations and upstream's, one line each.
std::vector<std::string> compare(const FileDescriptorSet& ours_set, const FileDescriptorSet& up_set,
                                 bool ours_must_exist_upstream) {
  std::vector<std::string> problems;
  const Index ours = index(ours_set), up = index(up_set);
  for (const auto& [name, m] : ours.messages) {
    auto it = up.messages.find(name);
    if (it == up.messages.end()) {
      if (ours_must_exist_upstream) problems.push_back("message " + name + " not upstream");
      continue;
    }
    std::map<std::string, const google::protobuf::FieldDescriptorProto*> upf;
    for (const auto& f : it->second->field()) upf[f.name()] = &f;
    for (const auto& f : m->field()) {
      const std::string fname = name + "." + f.name();
      auto u = upf.find(f.name());
      if (u == upf.end()) {
        if (ours_must_exist_upstream) problems.push_back("field " + fname + " not upstream");
        // Whatever the version, a number upstream uses for another field is a wire conflict.
        for (const auto& uf : it->second->field())
          if (uf.number() == f.number())
            problems.push_back("field " + fname + " uses number " + std::to_string(f.number()) +
                               " which upstream gives to " + uf.name());
        continue;
      }
      const auto& g = *u->second;
      if (g.number() != f.number())
        problems.push_back("field " + fname + ": number " + std::to_string(f.number()) +
                           ", upstream " + std::to_string(g.number()));
      if (g.type() != f.type())
        problems.push_back("field " + fname + ": type " + std::to_string(f.type()) + ", upstream " +
                           std::to_string(g.type()));
      if (g.type_name() != f.type_name())
        problems.push_back("field " + fname + ": type " + f.type_name() + ", upstream " +
                           g.type_name());
      if (g.label() != f.label())
        problems.push_back("field " + fname + ": label " + std::to_string(f.label()) +
                           ", upstream " + std::to_string(g.label()));
    }
  }
  for (const auto& [name, e] : ours.enums) {
    auto it = up.enums.find(name);
    if (it == up.enums.end()) {
      if (ours_must_exist_upstream) problems.push_back("enum " + name + " not upstream");
      continue;
    }
    std::map<std::string, int> upv;
    for (const auto& v : it->second->value()) upv[v.name()] = v.number();
    for (const auto& v : e->value()) {
      auto u = upv.find(v.name());
      if (u == upv.end()) {
        if (ours_must_exist_upstream)
          problems.push_back("enum value " + name + "." + v.name() + " not upstream");
      } else if (u->second != v.number()) {
        problems.push_back("enum value " + name + "." + v.name() + ": " +
                           std::to_string(v.number()) + ", upstream " + std::to_string(u->second));
      }
    }
  }
  for (const auto& [name, m] : ours.methods) {
    auto it = up.methods.find(name);
    if (it == up.methods.end()) {
      if (ours_must_exist_upstream) problems.push_back("rpc " + name + " not upstream");
      continue;
    }
    const auto& u = *it->second;
    if (u.input_type() != m->input_type() || u.output_type() != m->output_type() ||
        u.client_streaming() != m->client_streaming() ||
        u.server_streaming() != m->server_streaming())
      problems.push_back("rpc " + name + ": signature differs from upstream");
  }
  return problems;
}

class ProtoCompatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    shared_ = fs::path(NODELET_SOURCE_DIR) / ".." / "shared" / "spec" / "cri";
    if (const char* s = std::getenv("NODELET_SHARED_DIR")) shared_ = fs::path(s) / "spec" / "cri";
    if (!fs::exists(shared_ / "cri-api-master" / "api.proto"))
      GTEST_SKIP() << "upstream CRI protos not found under " << shared_
                   << " (../shared is absent): nothing to compare against";
    fs::create_directories(tmp_.path() / "ours" / "runtime" / "v1");
    ours_ = compileOurs(readFile(fs::path(NODELET_SOURCE_DIR) / "cri/proto/runtime/v1/api.proto"));
  }

  FileDescriptorSet compileOurs(const std::string& text) {
    std::ofstream(tmp_.path() / "ours/runtime/v1/api.proto") << text;
    return compile(tmp_.path() / "ours", "runtime/v1/api.proto", tmp_.path() / "ours.pb");
  }

  FileDescriptorSet compileUpstream(const std::string& version) {
    // protoc 3.21 does not know [debug_redact = true]; it is an option, not part of the wire.
    std::string text = readFile(shared_ / version / "api.proto");
    text = std::regex_replace(text, std::regex(R"(\s*\[debug_redact\s*=\s*true\])"), "");
    // cri-api <= v0.33 imports gogoproto; its options are Go-only.
    text = std::regex_replace(text, std::regex(R"(import\s+"github.com/gogo/[^"]*";)"), "");
    text = std::regex_replace(text, std::regex(R"(option\s+\(gogoproto\.[^;]*;)"), "");
    const fs::path dir = tmp_.path() / version;
    fs::create_directories(dir);
    std::ofstream(dir / "api.proto") << text;
    return compile(dir, "api.proto", tmp_.path() / (version + ".pb"));
  }

  TempDir tmp_;
  fs::path shared_;
  FileDescriptorSet ours_;
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "  " + x + "\n";
  return s;
}

TEST_F(ProtoCompatTest, MatchesUpstreamMaster) {
  auto problems = compare(ours_, compileUpstream("cri-api-master"), true);
  EXPECT_TRUE(problems.empty()) << join(problems);
}

TEST_F(ProtoCompatTest, HasNoWireConflictWithContainerd16Api) {
  // containerd 1.6.20 vendors cri-api v0.25.0: fields it does not know are fine, a field it
  // knows under another number or type is not.
  auto problems = compare(ours_, compileUpstream("cri-api-v0.25.0-containerd-1.6.20"), false);
  // Upstream changed these itself after v0.25.0; both are harmless with containerd 1.6:
  const std::set<std::string> known = {
      // string -> bytes: the same wire type (length-delimited); nodelet sends UTF-8 anyway.
      "field .runtime.v1.KeyValue.value: type 12, upstream 9",
      // field 4 was pod_sandbox_metadata; containerd 1.6 answers GetContainerEvents with
      // UNIMPLEMENTED, so no such message is ever received from it.
      "field .runtime.v1.ContainerEventResponse.pod_sandbox_status uses number 4 which upstream "
      "gives to pod_sandbox_metadata",
  };
  std::erase_if(problems, [&](const std::string& p) { return known.contains(p); });
  EXPECT_TRUE(problems.empty()) << join(problems);
}

TEST_F(ProtoCompatTest, CoversEveryRpcNodeletCalls) {
  const Index idx = index(ours_);
  for (const char* rpc : {"Version",
                          "Status",
                          "RunPodSandbox",
                          "StopPodSandbox",
                          "RemovePodSandbox",
                          "PodSandboxStatus",
                          "ListPodSandbox",
                          "CreateContainer",
                          "StartContainer",
                          "StopContainer",
                          "RemoveContainer",
                          "ListContainers",
                          "ContainerStatus",
                          "ExecSync",
                          "Exec",
                          "Attach",
                          "PortForward",
                          "ReopenContainerLog",
                          "ContainerStats",
                          "ListContainerStats",
                          "PodSandboxStats",
                          "UpdateContainerResources",
                          "GetContainerEvents"}) {
    EXPECT_TRUE(idx.methods.contains(std::string("RuntimeService/") + rpc)) << rpc;
  }
  for (const char* rpc : {"ImageStatus", "ListImages", "PullImage", "RemoveImage", "ImageFsInfo"})
    EXPECT_TRUE(idx.methods.contains(std::string("ImageService/") + rpc)) << rpc;
}

// The comparison must be able to fail: a proto with one wrong field number is caught.
TEST_F(ProtoCompatTest, DetectsAWrongFieldNumber) {
  std::string text = readFile(fs::path(NODELET_SOURCE_DIR) / "cri/proto/runtime/v1/api.proto");
  const std::string from = "  int64 timeout = 2;\n}\nmessage StopContainerResponse";
  const auto pos = text.find(from);
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, from.size(), "  int64 timeout = 3;\n}\nmessage StopContainerResponse");
  auto problems = compare(compileOurs(text), compileUpstream("cri-api-master"), true);
  ASSERT_EQ(problems.size(), 1u) << join(problems);
  EXPECT_NE(problems[0].find("StopContainerRequest.timeout: number 3, upstream 2"),
            std::string::npos)
      << problems[0];
}

TEST_F(ProtoCompatTest, DetectsAWrongFieldType) {
  std::string text = readFile(fs::path(NODELET_SOURCE_DIR) / "cri/proto/runtime/v1/api.proto");
  const std::string from = "  bytes value = 2;";  // KeyValue.value is bytes in master
  const auto pos = text.find(from);
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, from.size(), "  string value = 2;");
  auto problems = compare(compileOurs(text), compileUpstream("cri-api-master"), true);
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].find("KeyValue.value: type"), std::string::npos) << problems[0];
}

}  // namespace
