#!/usr/bin/env node
// Runs the ValidatingAdmissionPolicy of deploy/k8s/enforcement, as `kubectl kustomize` renders it, against
// sample admission requests, the way the API server applies it: the binding's namespace selector, then the
// policy's variables in order, then each validation; a validation that is false or fails to evaluate denies
// (failurePolicy: Fail), with its message or messageExpression. CEL is evaluated by @bufbuild/cel (a
// cel-spec conformant evaluator) with the strings extension, as Kubernetes enables it. What this cannot
// show: the API server also type-checks the expressions against the Pod schema when the policy is created.
//   node admission-test.js        exit 0 when every case gets the expected answer, 1 otherwise
"use strict";

const path = require("path");
const { K8S_DIR, checkKustomize, render, parseDocuments, fatal } = require("./validate.js");

let cel;
try {
  cel = { run: require("@bufbuild/cel").run, strings: require("@bufbuild/cel/ext").strings };
} catch (err) {
  fatal(`npm packages missing (${err.message.split("\n")[0]}); run scripts/setup`);
}

// JSON -> CEL input: objects become maps, integers CEL ints.
function toCel(v) {
  if (Array.isArray(v)) return v.map(toCel);
  if (v && typeof v === "object") return new Map(Object.entries(v).map(([k, x]) => [k, toCel(x)]));
  if (typeof v === "number" && Number.isInteger(v)) return BigInt(v);
  return v;
}

function evaluate(expression, bindings) {
  return cel.run(expression, bindings, { funcs: cel.strings });
}

function selects(selector, labels) {
  const okLabels = Object.entries(selector.matchLabels || {}).every(([k, v]) => labels[k] === v);
  return (
    okLabels &&
    (selector.matchExpressions || []).every((e) => {
      const has = Object.prototype.hasOwnProperty.call(labels, e.key);
      if (e.operator === "In") return has && e.values.includes(labels[e.key]);
      if (e.operator === "NotIn") return !has || !e.values.includes(labels[e.key]);
      if (e.operator === "Exists") return has;
      if (e.operator === "DoesNotExist") return !has;
      throw new Error(`operator ${e.operator}`);
    })
  );
}

function matchesRequest(policy, request) {
  return policy.spec.matchConstraints.resourceRules.some(
    (r) => r.operations.includes(request.operation) && r.resources.includes(request.resource),
  );
}

// One admission request -> { allowed, message }.
function admit(policy, binding, params, request) {
  const nsLabels = { "kubernetes.io/metadata.name": request.namespace };
  const selector = (binding.spec.matchResources || {}).namespaceSelector || {};
  if (!selects(selector, nsLabels) || !matchesRequest(policy, request))
    return { allowed: true, message: "not matched" };
  const variables = new Map();
  const bindings = {
    object: toCel(request.object),
    oldObject: request.oldObject ? toCel(request.oldObject) : null,
    params: toCel(params),
    request: toCel({ operation: request.operation, namespace: request.namespace }),
    variables,
  };
  try {
    for (const v of policy.spec.variables || []) variables.set(v.name, evaluate(v.expression, bindings));
    for (const check of policy.spec.validations) {
      if (evaluate(check.expression, bindings) === true) continue;
      const message = check.messageExpression ? evaluate(check.messageExpression, bindings) : check.message;
      return { allowed: false, message: String(message).trim() };
    }
  } catch (err) {
    return { allowed: false, message: `evaluation error (failurePolicy ${policy.spec.failurePolicy}): ${err.message}` };
  }
  return { allowed: true, message: "allowed" };
}

// ---- the cases -------------------------------------------------------------------------------------------

function pod(images = {}) {
  const containers = (list, prefix) => list.map((image, i) => ({ name: `${prefix}${i}`, image }));
  const spec = { containers: containers(images.containers || [], "c") };
  if (images.init) spec.initContainers = containers(images.init, "init");
  if (images.ephemeral) spec.ephemeralContainers = containers(images.ephemeral, "debug");
  return { apiVersion: "v1", kind: "Pod", metadata: { name: "p", labels: images.labels || {} }, spec };
}

function cases(prefix) {
  const mirror = (name) => `${prefix}${name}`;
  const app = mirror("docker.io/library/nginx:1.27");
  const create = (name, object, expect, extra = {}) => ({
    name,
    request: { operation: "CREATE", resource: "pods", namespace: "apps", object, ...extra },
    expect,
  });
  return [
    create(
      "images from the mirror are admitted",
      pod({ containers: [app, mirror("ghcr.io/acme/api@sha256:" + "a".repeat(64))] }),
      "allow",
    ),
    create(
      "a container image from Docker Hub is denied",
      pod({ containers: [app, "docker.io/library/alpine:3.20"] }),
      "deny:not: docker.io/library/alpine:3.20",
    ),
    create(
      "a short name (Docker Hub implied) is denied",
      pod({ containers: ["alpine:3.20"] }),
      "deny:not: alpine:3.20",
    ),
    create(
      "an init container image from elsewhere is denied",
      pod({ containers: [app], init: ["quay.io/prometheus/busybox:latest"] }),
      "deny:quay.io/prometheus/busybox:latest",
    ),
    create(
      "a look-alike host that only starts with the mirror's name is denied",
      pod({ containers: [prefix.replace(/\/$/, "") + ".evil.example/x:1"] }),
      "deny:.evil.example/x:1",
    ),
    create(
      "a pod in kube-system is not matched by the binding",
      pod({ containers: ["registry.k8s.io/pause:3.10"] }),
      "allow",
      { namespace: "kube-system" },
    ),
    create(
      "the mirror's own namespace is not matched",
      pod({ containers: ["registry.example.com/ocigate/ocigate:0.1.0"] }),
      "allow",
      { namespace: "ocigate" },
    ),
    {
      name: "kubectl debug with an image from elsewhere is denied",
      request: {
        operation: "UPDATE",
        resource: "pods/ephemeralcontainers",
        namespace: "apps",
        object: pod({ containers: [app], ephemeral: ["busybox:1.36"] }),
        oldObject: pod({ containers: [app] }),
      },
      expect: "deny:not: busybox:1.36",
    },
    {
      name: "kubectl debug with an image from the mirror is admitted",
      request: {
        operation: "UPDATE",
        resource: "pods/ephemeralcontainers",
        namespace: "apps",
        object: pod({ containers: [app], ephemeral: [mirror("docker.io/library/busybox:1.36")] }),
        oldObject: pod({ containers: [app] }),
      },
      expect: "allow",
    },
    {
      name: "an update of a pod that predates the policy keeps its old image",
      request: {
        operation: "UPDATE",
        resource: "pods",
        namespace: "apps",
        object: pod({ containers: ["alpine:3.20"], labels: { tier: "web" } }),
        oldObject: pod({ containers: ["alpine:3.20"] }),
      },
      expect: "allow",
    },
    {
      name: "an update that brings in an image from elsewhere is denied",
      request: {
        operation: "UPDATE",
        resource: "pods",
        namespace: "apps",
        object: pod({ containers: ["alpine:3.21"] }),
        oldObject: pod({ containers: ["alpine:3.20"] }),
      },
      expect: "deny:not: alpine:3.21",
    },
  ];
}

function paramCases(params) {
  const bad = (data) => ({ ...params, data });
  const host = params.data.prefix.replace(/\/$/, "");
  const request = (image) => ({
    operation: "CREATE",
    resource: "pods",
    namespace: "apps",
    object: pod({ containers: [image] }),
  });
  return [
    {
      name: "a parameter ConfigMap without data.prefix denies everything",
      params: bad({}),
      request: request("docker.io/library/alpine:3.20"),
      expect: "deny:needs data.prefix",
    },
    {
      name: "a prefix without its final '/' denies everything (it would let look-alike hosts through)",
      params: bad({ prefix: host }),
      request: request(`${host}.evil.example/x:1`),
      expect: "deny:needs data.prefix",
    },
  ];
}

function verdict(expect, got) {
  if (expect === "allow") return got.allowed;
  const [, want] = expect.split(/^deny:/);
  return !got.allowed && got.message.includes(want);
}

function main() {
  console.log(`admission-test: ${checkKustomize()}`);
  const dir = path.join(K8S_DIR, "enforcement");
  const problems = [];
  const text = render(dir);
  if (typeof text !== "string") fatal(text.error);
  const objects = parseDocuments(text, problems, "enforcement");
  if (problems.length) fatal(problems.join("; "));
  const policy = objects.find((o) => o.kind === "ValidatingAdmissionPolicy");
  const binding = objects.find(
    (o) => o.kind === "ValidatingAdmissionPolicyBinding" && o.spec.policyName === (policy || {}).metadata.name,
  );
  const params =
    binding && objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === binding.spec.paramRef.name);
  if (!policy || !binding || !params)
    fatal("enforcement/ must render a ValidatingAdmissionPolicy, its binding and the parameter ConfigMap");
  const prefix = params.data.prefix;
  const all = [...cases(prefix).map((c) => ({ ...c, params })), ...paramCases(params)];
  let failed = 0;
  for (const c of all) {
    const got = admit(policy, binding, c.params, c.request);
    const ok = verdict(c.expect, got);
    if (!ok) failed++;
    console.log(
      `${ok ? "ok  " : "FAIL"} ${c.name}: ${got.allowed ? "allowed" : "denied"} (${got.message})` +
        (ok ? "" : `; expected ${c.expect}`),
    );
  }
  console.log(`${all.length - failed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

process.exitCode = main();
