// Manifests -> pods: defaulting, naming, UIDs, and every way a manifest can be wrong.
#include "staticpods/manifest.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

namespace nodelet::staticpods {
namespace {

using nlohmann::json;

const SysTime kSeen = std::chrono::system_clock::from_time_t(1'764'163'080);
const char* kWeb = R"(apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: busybox:1.35
    ports:
    - containerPort: 80
)";

Result<StaticPod> parse(const std::string& text, const std::string& node = "Node-1",
                        const std::string& path = "/etc/manifests/web.yaml") {
  return parseManifest(text, {node, path, kSeen});
}

TEST(ManifestTest, AppliesTheApiServersDefaults) {
  auto sp = parse(kWeb);
  ASSERT_TRUE(sp) << sp.error().message;
  const auto& p = sp->pod;
  EXPECT_EQ(p.metadata.namespace_, "default");
  EXPECT_EQ(p.spec.restart_policy, "Always");
  EXPECT_EQ(p.spec.termination_grace_period_seconds, 30);
  EXPECT_EQ(p.spec.dns_policy, "ClusterFirst");
  const auto& c = p.spec.containers[0];
  EXPECT_EQ(c.image_pull_policy, "IfNotPresent");
  EXPECT_EQ(c.termination_message_path, "/dev/termination-log");
  EXPECT_EQ(c.termination_message_policy, "File");
  EXPECT_EQ(c.ports[0].protocol, "TCP");
  const json obj = json::parse(sp->object_json);
  EXPECT_EQ(obj["spec"]["schedulerName"], "default-scheduler");
  EXPECT_EQ(obj["spec"]["enableServiceLinks"], true);
  EXPECT_EQ(obj["status"]["phase"], "Pending");
  EXPECT_EQ(obj["spec"]["tolerations"][0], (json{{"operator", "Exists"}, {"effect", "NoExecute"}}));
}

TEST(ManifestTest, ImagePullPolicyFollowsTheTag) {
  struct Case {
    const char* image;
    const char* policy;
  } cases[] = {{"busybox", "Always"},
               {"busybox:latest", "Always"},
               {"busybox:1.35", "IfNotPresent"},
               {"localhost:5000/busybox", "Always"},
               {"localhost:5000/busybox:1", "IfNotPresent"},
               {"busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "IfNotPresent"}};
  for (const auto& c : cases) {
    std::string m = kWeb;
    m.replace(m.find("busybox:1.35"), 12, c.image);
    auto sp = parse(m);
    ASSERT_TRUE(sp) << c.image << ": " << sp.error().message;
    EXPECT_EQ(sp->pod.spec.containers[0].image_pull_policy, c.policy) << c.image;
  }
}

TEST(ManifestTest, NamesUidAndAnnotationsAreTheKubeletsFileSource) {
  auto sp = parse(kWeb);
  ASSERT_TRUE(sp);
  const auto& m = sp->pod.metadata;
  EXPECT_EQ(m.name, "web-node-1");
  EXPECT_EQ(sp->pod.spec.node_name, "Node-1");
  EXPECT_EQ(m.uid.size(), 32u);
  EXPECT_EQ(m.annotations.at("kubernetes.io/config.hash"), m.uid);
  EXPECT_EQ(m.annotations.at("kubernetes.io/config.source"), "file");
  EXPECT_EQ(m.annotations.at("kubernetes.io/config.seen"), "2025-11-26T13:18:00Z");

  // The UID is stable for the same content, node and file; anything else is another pod.
  EXPECT_EQ(parse(kWeb)->pod.metadata.uid, m.uid);
  EXPECT_NE(parse(std::string(kWeb) + "  restartPolicy: Never\n")->pod.metadata.uid, m.uid);
  EXPECT_NE(parse(kWeb, "other-node")->pod.metadata.uid, m.uid);
  EXPECT_NE(parse(kWeb, "Node-1", "/etc/manifests/web2.yaml")->pod.metadata.uid, m.uid);
  // A UID written in the manifest is kept, as the kubelet does.
  std::string fixed = kWeb;
  fixed.replace(fixed.find("  name: web\n"), 12, "  name: web\n  uid: my-own-uid\n");
  EXPECT_EQ(parse(fixed)->pod.metadata.uid, "my-own-uid");
}

TEST(ManifestTest, AcceptsJson) {
  auto sp = parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},
                      "spec":{"containers":[{"name":"c","image":"x:1"}]}})");
  ASSERT_TRUE(sp) << sp.error().message;
  EXPECT_EQ(sp->pod.metadata.name, "j-node-1");
}

TEST(ManifestTest, RejectsBadManifestsWithTheFieldAndReason) {
  struct Case {
    const char* name;
    std::string text;
    const char* error;
  } cases[] = {
      {"empty file", "", "empty document"},
      {"not a pod", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
       "kind: expected \"Pod\""},
      {"wrong apiVersion", "apiVersion: v2\nkind: Pod\nmetadata: {name: x}\nspec: {}\n",
       "apiVersion: expected \"v1\""},
      {"no name", "apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {}\n",
       "metadata.name: Required value"},
      {"uppercase name",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: Web}\nspec: {containers: [{name: a, image: "
       "x}]}\n",
       "metadata.name: Invalid value \"Web\""},
      {"no containers", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n",
       "spec.containers: Required value"},
      {"no image",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a}]}\n",
       "spec.containers[0].image: Required value"},
      {"duplicate names",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  initContainers: [{name: a, image: "
       "x}]\n  containers: [{name: a, image: x}]\n",
       "spec.containers[0].name: Duplicate value \"a\""},
      {"bad port",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: x, "
       "ports: [{containerPort: 70000}]}]}\n",
       "spec.containers[0].ports[0].containerPort: must be between 1 and 65535"},
      {"port as text",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: x, "
       "ports: [{containerPort: http}]}]}\n",
       "spec.containers[0].ports[0].containerPort: expected integer, got string"},
      {"bad restartPolicy",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {restartPolicy: Sometimes, "
       "containers: [{name: a, image: x}]}\n",
       "spec.restartPolicy: Unsupported value \"Sometimes\""},
      {"service account token",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {volumes: [{name: v, projected: "
       "{sources: [{configMap: {name: c}}, {serviceAccountToken: {path: t}}]}}], containers: "
       "[{name: a, image: x}]}\n",
       "spec.volumes[0].projected.sources[1].serviceAccountToken: static pods cannot use service "
       "account tokens"},
      {"csi volume",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {volumes: [{name: v, csi: "
       "{driver: d}}], containers: [{name: a, image: x}]}\n",
       "spec.volumes[0].csi: Unsupported volume type"},
      {"hostile configMap item path",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {volumes: [{name: v, downwardAPI: "
       "{defaultMode: 4095, items: [{path: a, fieldRef: {fieldPath: metadata.name}}]}}], "
       "containers: [{name: a, image: x}]}\n",
       "spec.volumes[0].downwardAPI.defaultMode: must be a file mode between 0 and 0777"},
      {"mount of a missing volume",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: x, "
       "volumeMounts: [{name: nope, mountPath: /x}]}]}\n",
       "spec.containers[0].volumeMounts[0].name: Not found: \"nope\""},
      {"subPath escape",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {volumes: [{name: v, emptyDir: {}}], "
       "containers: [{name: a, image: x, volumeMounts: [{name: v, mountPath: /x, subPath: "
       "../../etc}]}]}\n",
       "subPath: must be a relative path without '..'"},
      {"relative hostPath",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {volumes: [{name: v, hostPath: "
       "{path: etc}}], containers: [{name: a, image: x}]}\n",
       "spec.volumes[0].hostPath.path: must be an absolute path"},
      {"liveness successThreshold",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: x, "
       "livenessProbe: {exec: {command: [\"true\"]}, successThreshold: 2}}]}\n",
       "spec.containers[0].livenessProbe.successThreshold: must be 1"},
      {"app restartPolicy",
       "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: x, "
       "restartPolicy: Always}]}\n",
       "only init containers may set restartPolicy"},
      {"two documents", std::string(kWeb) + "---\n" + kWeb, "found 2 documents"},
      {"binary", std::string("\x00\x01\xff\xfe", 4), ""},
      {"too large", std::string(kMaxManifestBytes + 1, '#'), "bytes, more than the"},
      {"scalar", "hello", "expected a Pod object"},
  };
  for (const auto& c : cases) {
    auto sp = parse(c.text);
    ASSERT_FALSE(sp) << c.name;
    EXPECT_NE(sp.error().message.find(c.error), std::string::npos)
        << c.name << ": " << sp.error().message;
  }
}

TEST(ManifestTest, IgnoresDotfilesAndEditorLeftovers) {
  for (const char* yes : {"web.yaml", "web.yml", "web.json", "web", "Web.YAML"})
    EXPECT_TRUE(isManifestCandidate(yes)) << yes;
  for (const char* no : {".web.yaml", ".web.yaml.swp", "web.yaml~", ".#web.yaml", "web.yaml.swp",
                         "", "web.yaml.tmp"})
    EXPECT_FALSE(isManifestCandidate(no)) << no;
}

TEST(ManifestObjectsTest, ConfigMapsAndSecretsAreDefaultedDecodedAndChecked) {
  const ManifestContext ctx{"node-1", "/etc/manifests/cfg.yaml", kSeen};
  auto cm = parseManifestFile(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\n"
      "data: {greeting: hello, app.conf: \"x=1\\n\"}\nbinaryData: {blob: AAEC}\n",
      ctx);
  ASSERT_TRUE(cm) << cm.error().message;
  ASSERT_TRUE(cm->object);
  EXPECT_FALSE(cm->pod);
  EXPECT_EQ(cm->object->resource, "configmaps");
  EXPECT_EQ(cm->object->namespace_, "default");
  EXPECT_EQ(cm->object->name, "app-config");
  EXPECT_EQ(cm->object->data.at("greeting"), "hello");
  EXPECT_EQ(cm->object->data.at("app.conf"), "x=1\n");
  EXPECT_EQ(cm->object->data.at("blob"), std::string("\0\1\2", 3));
  EXPECT_EQ(cm->object->source_path, "/etc/manifests/cfg.yaml");

  auto secret = parseManifestFile(
      "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: kube-system}\n"
      "data: {user: YWRtaW4=, pass: b2xk}\nstringData: {pass: new}\n",
      ctx);
  ASSERT_TRUE(secret) << secret.error().message;
  EXPECT_EQ(secret->object->resource, "secrets");
  EXPECT_EQ(secret->object->namespace_, "kube-system");
  EXPECT_EQ(secret->object->data.at("user"), "admin");
  EXPECT_EQ(secret->object->data.at("pass"), "new") << "stringData wins, as the API server merges";
  auto shown = json::parse(secret->object->object_json);
  EXPECT_EQ(shown["type"], "Opaque");
  EXPECT_FALSE(shown.contains("stringData"));
  EXPECT_EQ(shown["data"]["pass"], "bmV3");

  struct Case {
    const char* text;
    const char* error;
  } bad[] = {
      {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {../x: a}\n",
       "data[../x]: Invalid value"},
      {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: 1}\n",
       "data[a]: must be a string"},
      {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: x}\nbinaryData: {a: "
       "eA==}\n",
       "binaryData[a]: Duplicate value"},
      {"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: \"!!!\"}\n",
       "data[k]: illegal base64 data"},
      {"apiVersion: v1\nkind: Secret\nmetadata: {name: S}\n", "metadata.name: Invalid value"},
      {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: [a]\n", "data: must be a map"},
      {"apiVersion: v1\nkind: Service\nmetadata: {name: c}\n",
       "kind: expected \"Pod\", \"ConfigMap\", \"Secret\" or \"RuntimeClass\""},
  };
  for (const auto& c : bad) {
    auto r = parseManifestFile(c.text, ctx);
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().message.find(c.error), std::string::npos)
        << c.text << " -> " << r.error().message;
  }
  EXPECT_FALSE(parseManifest("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", ctx))
      << "where a Pod is expected (nodelet check of a pod), an object is not one";
}

TEST(ManifestObjectsTest, RuntimeClassesAreClusterScopedAndNeedALabelForAHandler) {
  const ManifestContext ctx{"node-1", "/etc/manifests/rc.yaml", kSeen};
  auto rc = parseManifestFile(
      "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: sandboxed.example, "
      "namespace: ignored}\nhandler: runsc\n",
      ctx);
  ASSERT_TRUE(rc) << rc.error().message;
  ASSERT_TRUE(rc->object);
  EXPECT_EQ(rc->object->resource, "runtimeclasses");
  EXPECT_EQ(rc->object->namespace_, "") << "cluster-scoped: a namespace is dropped";
  EXPECT_EQ(rc->object->name, "sandboxed.example");
  EXPECT_EQ(rc->object->data, (std::map<std::string, std::string>{{"handler", "runsc"}}));
  EXPECT_FALSE(json::parse(rc->object->object_json)["metadata"].contains("namespace"));
  struct Case {
    const char* text;
    const char* error;
  } bad[] = {
      {"apiVersion: v1\nkind: RuntimeClass\nmetadata: {name: r}\nhandler: runc\n",
       "apiVersion: expected \"node.k8s.io/v1\", got \"v1\""},
      {"apiVersion: node.k8s.io/v1\nkind: ConfigMap\nmetadata: {name: c}\n",
       "apiVersion: expected \"v1\", got \"node.k8s.io/v1\""},
      {"apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: r}\n",
       "handler: Required value"},
      {"apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: r}\nhandler: 7\n",
       "handler: must be a string"},
      {"apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: r}\nhandler: a.b\n",
       "handler: Invalid value \"a.b\": must be a DNS-1123 label"},
      {"apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: R}\nhandler: runc\n",
       "metadata.name: Invalid value \"R\""},
  };
  for (const auto& c : bad) {
    auto r = parseManifestFile(c.text, ctx);
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().message.find(c.error), std::string::npos)
        << c.text << " -> " << r.error().message;
  }
  // A pod names a RuntimeClass by a DNS-1123 subdomain.
  EXPECT_TRUE(
      parse("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {runtimeClassName: "
            "sandboxed.example, containers: [{name: a, image: x}]}\n"));
  auto bad_name = parse(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {runtimeClassName: Bad_Name, "
      "containers: [{name: a, image: x}]}\n");
  ASSERT_FALSE(bad_name);
  EXPECT_NE(bad_name.error().message.find("spec.runtimeClassName: Invalid value \"Bad_Name\""),
            std::string::npos)
      << bad_name.error().message;
}

TEST(ManifestObjectsTest, StaticPodsMayUseConfigMapAndSecretVolumes) {
  auto r = parse(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {volumes: [{name: v, configMap: "
      "{name: c}}, {name: s, secret: {secretName: s}}], containers: [{name: a, image: x}]}\n");
  EXPECT_TRUE(r) << r.error().message;
}

// Randomised robustness: mutations of a valid manifest never crash the parser, and whatever it
// accepts validates. Bounded: a fixed seed and a fixed number of cases.
TEST(ManifestFuzzTest, MutatedManifestsNeverCrash) {
  std::mt19937 rng(20261126);
  const std::string seed =
      std::string(kWeb) +
      "  volumes:\n  - name: v\n    emptyDir: {medium: Memory, sizeLimit: 1Gi}\n";
  const std::string alphabet = "{}[]:,-'\"\n #&*!|>%@`0123456789abcxyzNULL\t\\";
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string m = seed;
    const int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % (m.size() + 1);
      switch (rng() % 4) {
        case 0:
          m.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 1:
          if (pos < m.size()) m.erase(pos, 1 + rng() % 8);
          break;
        case 2:
          if (pos < m.size()) m[pos] = static_cast<char>(rng() % 256);
          break;
        case 3:
          m.insert(pos, m.substr(rng() % m.size(), rng() % 40));
          break;
      }
    }
    auto sp = parse(m);
    if (sp) {
      ++accepted;
      EXPECT_TRUE(validatePod(sp->pod).empty()) << m;
    } else {
      EXPECT_FALSE(sp.error().message.empty());
    }
  }
  EXPECT_GT(accepted, 0) << "some mutations are harmless and must still parse";
}

}  // namespace
}  // namespace nodelet::staticpods
