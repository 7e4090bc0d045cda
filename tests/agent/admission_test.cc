// The kubelet's node-facing admission checks: node selector and required node affinity (every
// operator, ORed terms, invalid terms), NoExecute taints and tolerations, the OS checks, and a
// Node object read defensively.
#include "agent/admission.h"

#include <gtest/gtest.h>

#include "agent/core/api_json.h"

namespace nodelet::agent {
namespace {

using nlohmann::json;

api::Pod podWithSpec(const std::string& spec, const std::string& metadata = "{}") {
  json m = json::parse(metadata);
  m["name"] = "p";
  m["namespace"] = "default";
  m["uid"] = "u1";
  json p = {{"metadata", m}, {"spec", json::parse(spec)}};
  p["spec"]["containers"] = {{{"name", "c"}, {"image", "i"}}};
  auto pod = api::decodePod(p.dump());
  EXPECT_TRUE(pod) << pod.error().message;
  return *pod;
}

const AdmissionNode kNode{"node-1",
                          {{"kubernetes.io/hostname", "node-1"},
                           {"kubernetes.io/os", "linux"},
                           {"disk", "ssd"},
                           {"cores", "8"}},
                          {}};

bool admitsAffinity(const std::string& term) {
  const auto pod = podWithSpec(R"({"affinity":{"nodeAffinity":{
      "requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[)" +
                               term + "]}}}}");
  return !checkNodeAffinity(pod, kNode);
}

TEST(AdmissionTest, RequiredNodeAffinityOperators) {
  struct Case {
    const char* term;
    bool admitted;
  } cases[] = {
      {R"({"matchExpressions":[{"key":"disk","operator":"In","values":["hdd","ssd"]}]})", true},
      {R"({"matchExpressions":[{"key":"disk","operator":"In","values":["hdd"]}]})", false},
      {R"({"matchExpressions":[{"key":"gpu","operator":"NotIn","values":["a100"]}]})", true},
      {R"({"matchExpressions":[{"key":"disk","operator":"NotIn","values":["ssd"]}]})", false},
      {R"({"matchExpressions":[{"key":"disk","operator":"Exists"}]})", true},
      {R"({"matchExpressions":[{"key":"gpu","operator":"Exists"}]})", false},
      {R"({"matchExpressions":[{"key":"gpu","operator":"DoesNotExist"}]})", true},
      {R"({"matchExpressions":[{"key":"cores","operator":"Gt","values":["4"]}]})", true},
      {R"({"matchExpressions":[{"key":"cores","operator":"Lt","values":["4"]}]})", false},
      {R"({"matchExpressions":[{"key":"disk","operator":"Gt","values":["4"]}]})", false},
      // Every expression of a term must hold.
      {R"({"matchExpressions":[{"key":"disk","operator":"Exists"},{"key":"gpu","operator":"Exists"}]})",
       false},
      // Terms are ORed.
      {R"({"matchExpressions":[{"key":"gpu","operator":"Exists"}]},{"matchExpressions":[{"key":"disk","operator":"In","values":["ssd"]}]})",
       true},
      // An empty term, or an invalid one, matches nothing; the others still count.
      {R"({})", false},
      {R"({"matchExpressions":[{"key":"disk","operator":"In","values":[]}]})", false},
      {R"({"matchExpressions":[{"key":"cores","operator":"Gt","values":["x"]}]})", false},
      {R"({"matchExpressions":[{"key":"disk","operator":"Exists","values":["ssd"]}]})", false},
      {R"({"matchExpressions":[{"key":"disk","operator":"Near","values":["ssd"]}]})", false},
      {R"({"matchExpressions":[{"key":"cores","operator":"Gt","values":["x"]}]},{"matchExpressions":[{"key":"disk","operator":"Exists"}]})",
       true},
      // Fields: metadata.name, In or NotIn with one value.
      {R"({"matchFields":[{"key":"metadata.name","operator":"In","values":["node-1"]}]})", true},
      {R"({"matchFields":[{"key":"metadata.name","operator":"NotIn","values":["node-1"]}]})",
       false},
      {R"({"matchFields":[{"key":"metadata.name","operator":"In","values":["node-1","node-2"]}]})",
       false},
      {R"({"matchFields":[{"key":"metadata.name","operator":"Exists"}]})", false},
  };
  for (const auto& c : cases) EXPECT_EQ(admitsAffinity(c.term), c.admitted) << c.term;
  // Required with no terms at all admits nothing.
  EXPECT_TRUE(checkNodeAffinity(
      podWithSpec(
          R"({"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[]}}}})"),
      kNode));
  // Preferred affinity is the scheduler's business only.
  EXPECT_FALSE(checkNodeAffinity(
      podWithSpec(
          R"({"affinity":{"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":1,"preference":{"matchExpressions":[{"key":"gpu","operator":"Exists"}]}}]}}})"),
      kNode));
}

TEST(AdmissionTest, NodeSelectorAndTheKubeletsMessage) {
  EXPECT_FALSE(checkNodeAffinity(podWithSpec(R"({"nodeSelector":{"disk":"ssd"}})"), kNode));
  auto f = checkNodeAffinity(podWithSpec(R"({"nodeSelector":{"disk":"ssd","gpu":"a100"}})"), kNode);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->reason, "NodeAffinity");
  EXPECT_EQ(f->message,
            "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector");
  // Both must hold: the selector and the required terms.
  EXPECT_TRUE(checkNodeAffinity(
      podWithSpec(
          R"({"nodeSelector":{"disk":"hdd"},"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"disk","operator":"Exists"}]}]}}}})"),
      kNode));
}

TEST(AdmissionTest, OnlyNoExecuteTaintsAndOnlyForApiPods) {
  AdmissionNode tainted = kNode;
  tainted.taints = {{"dedicated", "db", "NoSchedule"}, {"maintenance", "", "NoExecute"}};
  auto f = checkTaints(podWithSpec("{}"), tainted);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->reason, "TaintToleration");
  EXPECT_EQ(f->message,
            "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate");
  EXPECT_FALSE(checkTaints(
      podWithSpec(
          R"({"tolerations":[{"key":"maintenance","operator":"Exists","effect":"NoExecute"}]})"),
      tainted));
  EXPECT_FALSE(checkTaints(podWithSpec(R"({"tolerations":[{"operator":"Exists"}]})"), tainted))
      << "an empty key with Exists tolerates everything";
  EXPECT_TRUE(checkTaints(
      podWithSpec(
          R"({"tolerations":[{"key":"maintenance","operator":"Exists","effect":"NoSchedule"}]})"),
      tainted));
  // A static pod is never refused for taints.
  EXPECT_FALSE(checkTaints(
      podWithSpec("{}", R"({"annotations":{"kubernetes.io/config.source":"file"}})"), tainted));
}

TEST(AdmissionTest, TolerationMatching) {
  const api::Taint t{"k", "v", "NoExecute"};
  struct Case {
    api::Toleration tol;
    bool tolerates;
  } cases[] = {
      {{"k", "", "v", "NoExecute", {}}, true},        // "" operator is Equal
      {{"k", "Equal", "v", "", {}}, true},            // any effect
      {{"k", "Equal", "w", "NoExecute", {}}, false},  // another value
      {{"k", "Exists", "", "NoExecute", {}}, true},
      {{"other", "Exists", "", "", {}}, false},
      {{"", "Exists", "", "", {}}, true},
      {{"k", "Equal", "v", "NoSchedule", {}}, false},
      {{"k", "Gt", "v", "", {}}, false},              // unknown operator
      {{"k", "Exists", "", "NoExecute", 300}, true},  // tolerationSeconds: the kubelet admits
  };
  for (const auto& c : cases)
    EXPECT_EQ(toleratesTaint(c.tol, t), c.tolerates)
        << c.tol.key << " " << c.tol.op << " " << c.tol.value << " " << c.tol.effect;
}

TEST(AdmissionTest, OperatingSystem) {
  EXPECT_FALSE(checkOperatingSystem(podWithSpec(R"({"os":{"name":"linux"}})")));
  auto f = checkOperatingSystem(podWithSpec(R"({"os":{"name":"windows"}})"));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->reason, "PodOSNotSupported");
  f = checkOperatingSystem(podWithSpec("{}", R"({"labels":{"kubernetes.io/os":"windows"}})"));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->reason, "PodOSSelectorNodeLabelDoesNotMatch");
  EXPECT_FALSE(
      checkOperatingSystem(podWithSpec("{}", R"({"labels":{"kubernetes.io/os":"linux"}})")));
}

TEST(AdmissionTest, TheNodeObjectIsReadDefensively) {
  const auto n = admissionNodeFromJson(
      "node-1", json::parse(R"({"metadata":{"name":"node-1","labels":{"a":"1","bad":7}},
      "spec":{"taints":[{"key":"k","value":"v","effect":"NoExecute"},"junk",{"key":3}]}})"));
  EXPECT_EQ(n.name, "node-1");
  EXPECT_EQ(n.labels, (std::map<std::string, std::string>{{"a", "1"}}));
  ASSERT_EQ(n.taints.size(), 2u);
  EXPECT_EQ(n.taints[0], (api::Taint{"k", "v", "NoExecute"}));
  EXPECT_EQ(n.taints[1], (api::Taint{}));
  for (const char* junk : {R"("x")", "[]", R"({"metadata":[]})", R"({"metadata":{"labels":[1]}})",
                           R"({"spec":{"taints":{}}})", "null"}) {
    const auto m = admissionNodeFromJson("n", json::parse(junk));
    EXPECT_TRUE(m.labels.empty()) << junk;
    EXPECT_TRUE(m.taints.empty()) << junk;
  }
}

}  // namespace
}  // namespace nodelet::agent
