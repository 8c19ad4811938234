#!/usr/bin/env node
// Renders every kustomization under deploy/k8s with `kubectl kustomize` and validates each object offline:
//   1. its apiVersion/kind must be a GA kind of Kubernetes 1.33 or a prometheus-operator CRD kind that the
//      pinned npm models know: an unknown kind fails, it is never skipped;
//   2. the object must pass that kind's JSON schema (kubernetes-models: generated from the Kubernetes
//      OpenAPI spec; required fields, types, enums, formats);
//   3. it may hold no field the kind does not declare (the API server's strict field validation; the OpenAPI
//      schema itself does not forbid unknown fields). Field names come from the same package's type
//      declarations, read with the TypeScript compiler;
//   4. references inside one rendering must resolve (volume mounts, named ports, selectors, the generated
//      ConfigMap, the governing Service), pods of a namespace that enforces the "restricted" Pod Security
//      Standard must meet it, and the ocigate.yaml a container runs with must fit its pod (paths under
//      mounts, ports declared, probe scheme matching server.tls).
//
//   node validate.js                           every kustomization under deploy/k8s
//   node validate.js DIR...                    these kustomizations
//   node validate.js --expect-failures DIR     every *.yaml in DIR is an already rendered, broken manifest
//                                              that must be rejected with the messages its `# expect:`
//                                              lines name (the validator's own negative test)
// Exit: 0 valid, 1 a problem was found (or a broken fixture passed), 2 the tools are missing.
"use strict";

const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");

const K8S_DIR = path.resolve(__dirname, "..");
const MIN_KUSTOMIZE_MAJOR = 5;
const KUBERNETES_SCHEMA = "1.33"; // kubernetes-models 4.5.x: "Update schema version to v1.33.0"

function fatal(message) {
  console.error(`validate: ${message}`);
  process.exit(2);
}

function loadTools() {
  try {
    return {
      YAML: require("yaml"),
      ts: require("typescript"),
      versions: ["kubernetes-models", "@kubernetes-models/prometheus-operator", "typescript", "yaml"].map(
        (name) => `${name} ${require(`${name}/package.json`).version}`,
      ),
    };
  } catch (err) {
    fatal(
      `npm packages missing (${err.message.split("\n")[0]}); run scripts/setup, ` +
        `which runs \`npm ci\` in deploy/k8s/validate`,
    );
  }
}
const { YAML, ts, versions } = loadTools();

// ---- rendering ---------------------------------------------------------------------------------------

function kubectl() {
  return process.env.KUBECTL || "kubectl";
}

function checkKustomize() {
  let out;
  try {
    out = execFileSync(kubectl(), ["version", "--client", "-o", "json"], { encoding: "utf8", timeout: 20000 });
  } catch (err) {
    fatal(
      `cannot run \`${kubectl()} version --client\` (${err.code || err.message.split("\n")[0]}): ` +
        `kubectl renders the kustomizations; see docs/kubernetes.md "Validation"`,
    );
  }
  const info = JSON.parse(out);
  const kustomize = info.kustomizeVersion || "";
  const major = Number((/^v(\d+)\./.exec(kustomize) || [])[1]);
  if (!(major >= MIN_KUSTOMIZE_MAJOR)) {
    fatal(
      `kubectl ${info.clientVersion.gitVersion} embeds kustomize '${kustomize || "unknown"}'; ` +
        `these kustomizations need kustomize v${MIN_KUSTOMIZE_MAJOR} or later (kubectl 1.27+)`,
    );
  }
  return `kubectl ${info.clientVersion.gitVersion}, kustomize ${kustomize}`;
}

// Every directory under dir with a kustomization file, except Components (kind: Component), which render only
// as part of the kustomizations that use them, and are checked there.
function findKustomizations(dir, found = []) {
  const entries = fs.readdirSync(dir, { withFileTypes: true });
  const file = entries.find((e) => e.isFile() && /^(kustomization\.ya?ml|Kustomization)$/.test(e.name));
  if (file && !/^kind:\s*Component\s*$/m.test(fs.readFileSync(path.join(dir, file.name), "utf8"))) found.push(dir);
  for (const e of entries) {
    if (!e.isDirectory() || e.name === "node_modules" || e.name.startsWith(".")) continue;
    const sub = path.join(dir, e.name);
    if (sub !== __dirname) findKustomizations(sub, found);
  }
  return found;
}

function render(dir) {
  try {
    return execFileSync(kubectl(), ["kustomize", dir], { encoding: "utf8", timeout: 30000, stdio: "pipe" });
  } catch (err) {
    return { error: `kubectl kustomize failed: ${(err.stderr || err.message).toString().trim()}` };
  }
}

// Kubernetes reads manifests as YAML 1.1 (0440 is octal, `yes` a boolean); so do we. Duplicate keys fail.
function parseDocuments(text, problems, source) {
  const objects = [];
  for (const doc of YAML.parseAllDocuments(text, { version: "1.1", uniqueKeys: true })) {
    for (const e of doc.errors) problems.push(`${source}: YAML: ${e.message}`);
    if (doc.errors.length) continue;
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value !== null && value !== undefined) objects.push(value);
  }
  return objects;
}

// ---- kinds and schemas -------------------------------------------------------------------------------

function label(obj) {
  const name = obj && obj.metadata && obj.metadata.name;
  return `${(obj && obj.kind) || "?"}/${name || "?"}`;
}

// apiVersion + kind -> the npm module that models it, or an error string.
function modelModule(apiVersion, kind) {
  const m = /^(?:([a-z0-9.-]+)\/)?(v\d+(?:(?:alpha|beta)\d+)?)$/.exec(apiVersion || "");
  if (!m || !/^[A-Z][A-Za-z0-9]*$/.test(kind || "")) return { error: `not a Kubernetes apiVersion/kind` };
  const [, group, version] = m;
  // Only GA versions: beta APIs come and go between releases, and the models keep removed ones.
  if (!/^v\d+$/.test(version)) return { error: `${apiVersion} is not a GA API version` };
  if (group === "monitoring.coreos.com")
    return { module: `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}` };
  return { module: group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}` };
}

function loadModel(obj) {
  const where = modelModule(obj.apiVersion, obj.kind);
  if (where.error) return where;
  let cls;
  try {
    cls = require(where.module)[obj.kind];
  } catch (err) {
    cls = undefined;
  }
  if (typeof cls !== "function" || cls.apiVersion !== obj.apiVersion || cls.kind !== obj.kind) {
    return {
      error:
        `unknown kind ${obj.apiVersion} ${obj.kind} (not in Kubernetes ${KUBERNETES_SCHEMA} ` +
        `nor the prometheus-operator models)`,
    };
  }
  return { cls, module: where.module };
}

// "/spec/ports/0/protocol" -> "spec.ports[0].protocol", the form the other checks print.
function jsonPointerPath(pointer) {
  return pointer
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((at, p) => (/^\d+$/.test(p) ? `${at}[${p}]` : at ? `${at}.${p}` : p), "");
}

function schemaProblems(cls, obj) {
  try {
    new cls(obj).validate();
    return [];
  } catch (err) {
    if (!Array.isArray(err.errors)) return [`schema: ${err.message}`];
    return err.errors.map((e) => {
      const extra = e.params && e.params.allowedValues ? ` (${e.params.allowedValues.join(", ")})` : "";
      return `${jsonPointerPath(e.instancePath) || "(object)"}: ${e.message}${extra}`;
    });
  }
}

// ---- unknown fields, from the models' TypeScript declarations -----------------------------------------

// One TypeScript program over every kind in use: type alias T<i> = I<Kind> from each kind's module.
function declaredTypes(modules) {
  const file = path.join(__dirname, "__kinds__.ts");
  const source = modules
    .map((m, i) => `import type { I${path.basename(m)} as K${i} } from "${m}";\n` + `export type T${i} = K${i};\n`)
    .join("");
  const options = {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    types: [],
    moduleResolution: ts.ModuleResolutionKind.Node10,
    module: ts.ModuleKind.CommonJS,
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  host.readFile = (f) => (path.resolve(f) === file ? source : readFile(f));
  const exists = host.fileExists.bind(host);
  host.fileExists = (f) => path.resolve(f) === file || exists(f);
  const getSource = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang) =>
    path.resolve(f) === file ? ts.createSourceFile(f, source, lang, true) : getSource(f, lang);
  const program = ts.createProgram([file], options, host);
  const checker = program.getTypeChecker();
  const root = program.getSourceFile(file);
  const unresolved = ts.getPreEmitDiagnostics(program, root);
  if (unresolved.length) {
    fatal(`model declarations do not load: ${ts.flattenDiagnosticMessageText(unresolved[0].messageText, "\n")}`);
  }
  const byModule = new Map();
  root.statements.filter(ts.isTypeAliasDeclaration).forEach((decl, i) => {
    byModule.set(modules[i], { type: checker.getTypeAtLocation(decl.name), node: decl });
  });
  return { checker, byModule };
}

function objectMembers(checker, type) {
  const t = checker.getNonNullableType(type);
  if (t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return null;
  return (t.isUnion() ? t.types : [t]).filter((m) => m.flags & ts.TypeFlags.Object);
}

function fieldType(checker, members, key, node) {
  for (const m of members) {
    const prop = m.getProperty(key);
    if (prop) return checker.getTypeOfSymbolAtLocation(prop, node);
    const index = checker.getIndexTypeOfType(m, ts.IndexKind.String);
    if (index) return index;
  }
  return null;
}

function unknownFields(checker, value, type, node, at, out) {
  if (value === null || typeof value !== "object") return out;
  const members = objectMembers(checker, type);
  if (!members || members.length === 0) return out; // `any`, or a scalar where the schema check reports it
  if (Array.isArray(value)) {
    const arrays = members.filter((m) => checker.isArrayType(m));
    if (arrays.length) {
      const item = checker.getTypeArguments(arrays[0])[0];
      value.forEach((v, i) => unknownFields(checker, v, item, node, `${at}[${i}]`, out));
    }
    return out;
  }
  for (const [key, v] of Object.entries(value)) {
    const where = at ? `${at}.${key}` : key;
    const t = fieldType(checker, members, key, node);
    if (t === null) out.push(`${where}: unknown field (the kind's schema does not declare it)`);
    else unknownFields(checker, v, t, node, where, out);
  }
  return out;
}

// ---- references inside one rendering -------------------------------------------------------------------

const WORKLOADS = new Set(["StatefulSet", "Deployment", "DaemonSet"]);
// The API server takes these, hugepages-<size>, or a domain-qualified extended resource (vendor.com/gpu).
const RESOURCE_NAME = /^(cpu|memory|ephemeral-storage|hugepages-[0-9]+[KMG]i)$|^[a-z0-9.-]+\/[A-Za-z0-9._-]+$/;

function matches(selector, labels) {
  const want = (selector && selector.matchLabels) || {};
  return Object.keys(want).length > 0 && Object.entries(want).every(([k, v]) => (labels || {})[k] === v);
}

function podTemplates(objects) {
  return objects.filter((o) => WORKLOADS.has(o.kind) && o.spec && o.spec.template);
}

function containerPortNames(pod) {
  const names = new Set();
  for (const c of pod.spec.containers || []) for (const p of c.ports || []) if (p.name) names.add(p.name);
  return names;
}

function checkWorkload(w, objects, say) {
  const pod = w.spec.template;
  if (w.spec.selector && !matches(w.spec.selector, pod.metadata && pod.metadata.labels))
    say(w, "spec.selector does not match the pod template's labels");
  const volumes = new Set(
    [...(pod.spec.volumes || []), ...(w.spec.volumeClaimTemplates || []).map((t) => t.metadata)].map(
      (v) => v && v.name,
    ),
  );
  for (const c of [...(pod.spec.initContainers || []), ...(pod.spec.containers || [])]) {
    for (const m of c.volumeMounts || [])
      if (!volumes.has(m.name)) say(w, `container ${c.name}: volumeMount ${m.name} names no volume`);
    for (const kind of ["requests", "limits"]) {
      for (const r of Object.keys((c.resources || {})[kind] || {})) {
        if (!RESOURCE_NAME.test(r)) say(w, `container ${c.name}: resources.${kind}.${r} is not a resource name`);
      }
    }
    const own = new Set((c.ports || []).map((p) => p.name));
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      const port = c[probe] && (c[probe].httpGet || c[probe].tcpSocket || {}).port;
      if (typeof port === "string" && !own.has(port))
        say(w, `container ${c.name}: ${probe} port ${port} is not a port of the container`);
    }
  }
  for (const v of pod.spec.volumes || []) {
    const cm = v.configMap;
    if (cm && !cm.optional && !objects.some((o) => o.kind === "ConfigMap" && o.metadata.name === cm.name)) {
      say(w, `volume ${v.name}: ConfigMap ${cm.name} is not in this rendering`);
    }
  }
  if (
    w.kind === "StatefulSet" &&
    w.spec.serviceName &&
    !objects.some((o) => o.kind === "Service" && o.metadata.name === w.spec.serviceName && o.spec.clusterIP === "None")
  ) {
    say(w, `spec.serviceName ${w.spec.serviceName} is not a headless Service in this rendering`);
  }
}

function checkService(s, objects, say) {
  const selected = podTemplates(objects).filter((w) =>
    matches({ matchLabels: s.spec.selector }, w.spec.template.metadata.labels),
  );
  if (s.spec.selector && selected.length === 0)
    return say(s, "spec.selector matches no pod template in this rendering");
  for (const p of s.spec.ports || []) {
    if (
      typeof p.targetPort === "string" &&
      !selected.some((w) => containerPortNames(w.spec.template).has(p.targetPort))
    ) {
      say(s, `port ${p.name}: targetPort ${p.targetPort} is not a container port of the selected pods`);
    }
  }
}

function checkServiceMonitor(sm, objects, say) {
  const services = objects.filter((o) => o.kind === "Service" && matches(sm.spec.selector, o.metadata.labels));
  if (services.length === 0) return say(sm, "spec.selector matches no Service in this rendering");
  for (const e of sm.spec.endpoints || []) {
    if (e.port && !services.some((s) => (s.spec.ports || []).some((p) => p.name === e.port))) {
      say(sm, `endpoint port ${e.port} is not a port of the selected Services`);
    }
  }
}

function checkSelectsPods(o, objects, say) {
  const sel = o.spec.podSelector || o.spec.selector;
  if (sel && sel.matchLabels && !podTemplates(objects).some((w) => matches(sel, w.spec.template.metadata.labels))) {
    say(o, "its pod selector matches no pod template in this rendering");
  }
}

// The "restricted" Pod Security Standard, for pods of a namespace in this rendering that enforces it: the API
// server would refuse them at apply time. https://kubernetes.io/docs/concepts/security/pod-security-standards/
const RESTRICTED_VOLUMES = [
  "configMap",
  "csi",
  "downwardAPI",
  "emptyDir",
  "ephemeral",
  "persistentVolumeClaim",
  "projected",
  "secret",
];

function restrictedNamespace(objects, ns) {
  return objects.some(
    (o) =>
      o.kind === "Namespace" &&
      o.metadata.name === ns &&
      (o.metadata.labels || {})["pod-security.kubernetes.io/enforce"] === "restricted",
  );
}

function restrictedProblems(pod) {
  const out = [];
  const ps = pod.spec.securityContext || {};
  for (const f of ["hostNetwork", "hostPID", "hostIPC"]) if (pod.spec[f]) out.push(`spec.${f} is set`);
  for (const v of pod.spec.volumes || []) {
    const type = Object.keys(v).find((k) => k !== "name");
    if (!RESTRICTED_VOLUMES.includes(type)) out.push(`volume ${v.name} is of type ${type}`);
  }
  const seccomp = (sc) => sc && sc.seccompProfile && ["RuntimeDefault", "Localhost"].includes(sc.seccompProfile.type);
  for (const c of [...(pod.spec.initContainers || []), ...(pod.spec.containers || [])]) {
    const sc = c.securityContext || {};
    const caps = sc.capabilities || {};
    if (sc.privileged) out.push(`container ${c.name} is privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`container ${c.name} lacks allowPrivilegeEscalation: false`);
    if (!(caps.drop || []).includes("ALL")) out.push(`container ${c.name} does not drop ALL capabilities`);
    if ((caps.add || []).some((x) => x !== "NET_BIND_SERVICE")) out.push(`container ${c.name} adds capabilities`);
    if (!(sc.runAsNonRoot === true || (ps.runAsNonRoot === true && sc.runAsNonRoot !== false)))
      out.push(`container ${c.name} may run as root (runAsNonRoot)`);
    if (sc.runAsUser === 0 || (ps.runAsUser === 0 && sc.runAsUser === undefined))
      out.push(`container ${c.name} runs as UID 0`);
    if (!seccomp(sc) && !(seccomp(ps) && !sc.seccompProfile))
      out.push(`container ${c.name} has no RuntimeDefault or Localhost seccomp profile`);
    if ((c.ports || []).some((p) => p.hostPort)) out.push(`container ${c.name} uses a hostPort`);
  }
  return out;
}

function checkPodSecurity(w, objects, say) {
  if (!restrictedNamespace(objects, w.metadata.namespace)) return;
  for (const p of restrictedProblems(w.spec.template))
    say(w, `Pod Security "restricted" (namespace ${w.metadata.namespace}): ${p}`);
}

function checkPolicyBinding(b, objects, say) {
  const policy = objects.find((o) => o.kind === "ValidatingAdmissionPolicy" && o.metadata.name === b.spec.policyName);
  if (!policy)
    return say(b, `spec.policyName ${b.spec.policyName} is not a ValidatingAdmissionPolicy in this rendering`);
  const kind = policy.spec.paramKind;
  const ref = b.spec.paramRef;
  if (kind && !ref)
    say(b, `policy ${policy.metadata.name} takes a ${kind.kind} parameter but spec.paramRef is not set`);
  if (
    kind &&
    ref &&
    ref.name &&
    kind.kind === "ConfigMap" &&
    !objects.some(
      (o) => o.kind === "ConfigMap" && o.metadata.name === ref.name && o.metadata.namespace === ref.namespace,
    )
  ) {
    say(b, `spec.paramRef ConfigMap ${ref.namespace}/${ref.name} is not in this rendering`);
  }
}

// ---- ocigate.yaml against the pod that runs it ----------------------------------------------------------

function configOf(container, pod, objects) {
  const args = [...(container.command || []), ...(container.args || [])];
  const i = args.indexOf("--config");
  if (!args.includes("ocigate") || i < 0 || !args[i + 1]) return null;
  const file = args[i + 1];
  const mount = (container.volumeMounts || []).find((m) => m.mountPath === path.posix.dirname(file));
  const volume = mount && (pod.spec.volumes || []).find((v) => v.name === mount.name);
  const cm =
    volume &&
    volume.configMap &&
    objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === volume.configMap.name);
  return { file, text: cm && cm.data && cm.data[path.posix.basename(file)] };
}

function ocigatePaths(config) {
  const paths = [];
  const add = (key, value) => value !== undefined && paths.push([key, value]);
  const server = config.server || {};
  const tls = server.tls || {};
  for (const k of ["cert_file", "key_file", "client_ca_file"]) add(`server.tls.${k}`, tls[k]);
  (config.upstreams || []).forEach((u, i) => {
    add(`upstreams[${i}].password_file`, u.password_file);
    add(`upstreams[${i}].ca_file`, u.ca_file);
  });
  add("auth.htpasswd_file", (config.auth || {}).htpasswd_file);
  return paths;
}

function under(file, mounts) {
  return mounts.find((m) => file === m.mountPath || file.startsWith(m.mountPath.replace(/\/$/, "") + "/"));
}

function checkOcigateConfig(w, objects, say) {
  const pod = w.spec.template;
  for (const c of pod.spec.containers || []) {
    const found = configOf(c, pod, objects);
    if (!found) continue;
    if (typeof found.text !== "string") {
      say(w, `container ${c.name}: --config ${found.file} is not a key of a mounted ConfigMap in this rendering`);
      continue;
    }
    let config;
    try {
      config = YAML.parse(found.text, { uniqueKeys: true }) || {};
    } catch (err) {
      say(w, `${found.file}: ${err.message}`);
      continue;
    }
    // Only the mounts are written (cache, /tmp): a read-only root keeps a compromised process from planting files.
    if (!(c.securityContext || {}).readOnlyRootFilesystem)
      say(w, `container ${c.name} runs ocigate without readOnlyRootFilesystem`);
    const mounts = c.volumeMounts || [];
    const claims = new Set((w.spec.volumeClaimTemplates || []).map((t) => t.metadata.name));
    const storage = (config.storage || {}).path;
    const cacheMount = typeof storage === "string" && under(storage, mounts);
    if (!cacheMount || !claims.has(cacheMount.name) || cacheMount.readOnly) {
      say(w, `${found.file}: storage.path ${storage} is not on a writable volumeClaimTemplate mount`);
    }
    for (const [key, file] of ocigatePaths(config)) {
      if (!under(String(file), mounts))
        say(w, `${found.file}: ${key} ${file} is under no volumeMount of container ${c.name}`);
    }
    const ports = new Map((c.ports || []).map((p) => [p.containerPort, p.name]));
    for (const key of ["listen", "metrics_listen"]) {
      const value = (config.server || {})[key];
      const port = value && Number(String(value).split(":").pop());
      if (value && !ports.has(port)) say(w, `${found.file}: server.${key} port ${port} is not a containerPort`);
    }
    checkProbeScheme(w, c, config, found.file, ports, say);
  }
}

// With server.tls the main listener refuses plain HTTP (403) unless allow_plain_http: probes must speak HTTPS.
function checkProbeScheme(w, c, config, file, ports, say) {
  const tls = (config.server || {}).tls;
  const httpsOnly = !!tls && tls.allow_plain_http !== true;
  const listen = Number(
    String((config.server || {}).listen || "0.0.0.0:5000")
      .split(":")
      .pop(),
  );
  for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
    const get = c[probe] && c[probe].httpGet;
    if (!get) continue;
    const port = typeof get.port === "string" ? [...ports].find(([, n]) => n === get.port)?.[0] : get.port;
    if (port !== listen) continue;
    const scheme = get.scheme || "HTTP";
    if (httpsOnly && scheme !== "HTTPS")
      say(w, `container ${c.name}: ${probe} is ${scheme} but ${file} sets server.tls (plain HTTP is refused)`);
    if (!tls && scheme === "HTTPS") say(w, `container ${c.name}: ${probe} is HTTPS but ${file} sets no server.tls`);
  }
}

function referenceProblems(objects) {
  const out = [];
  const say = (o, message) => out.push(`${label(o)}: ${message}`);
  for (const o of objects) {
    if (!o || !o.spec) continue;
    if (WORKLOADS.has(o.kind) && o.spec.template) {
      checkWorkload(o, objects, say);
      checkPodSecurity(o, objects, say);
      checkOcigateConfig(o, objects, say);
    }
    if (o.kind === "Service") checkService(o, objects, say);
    if (o.kind === "ServiceMonitor") checkServiceMonitor(o, objects, say);
    if (o.kind === "PodDisruptionBudget" || o.kind === "NetworkPolicy") checkSelectsPods(o, objects, say);
    if (o.kind === "ValidatingAdmissionPolicyBinding") checkPolicyBinding(o, objects, say);
  }
  return out;
}

// ---- driver ---------------------------------------------------------------------------------------------

// Validates the objects of each rendering; returns { source: [problems] } and the object count.
function validateAll(renderings) {
  const results = new Map();
  const pending = [];
  let count = 0;
  for (const { source, text } of renderings) {
    const problems = [];
    results.set(source, problems);
    if (typeof text !== "string") {
      problems.push(text.error);
      continue;
    }
    const objects = parseDocuments(text, problems, source);
    if (objects.length === 0 && problems.length === 0) problems.push("renders no objects");
    for (const obj of objects) {
      count++;
      if (!obj || typeof obj !== "object" || Array.isArray(obj)) {
        problems.push("a document that is not an object");
        continue;
      }
      const model = loadModel(obj);
      if (model.error) {
        problems.push(`${label(obj)}: ${model.error}`);
        continue;
      }
      for (const p of schemaProblems(model.cls, obj)) problems.push(`${label(obj)}: ${p}`);
      pending.push({ problems, obj, module: model.module });
    }
    problems.push(...referenceProblems(objects.filter((o) => o && typeof o === "object")));
  }
  const modules = [...new Set(pending.map((p) => p.module))];
  if (modules.length) {
    const { checker, byModule } = declaredTypes(modules);
    for (const { problems, obj, module } of pending) {
      const { type, node } = byModule.get(module);
      for (const p of unknownFields(checker, obj, type, node, "", [])) problems.push(`${label(obj)}: ${p}`);
    }
  }
  return { results, count };
}

function report(results) {
  let bad = 0;
  for (const [source, problems] of results) {
    if (problems.length === 0) {
      console.log(`ok   ${source}`);
      continue;
    }
    bad++;
    console.log(`FAIL ${source}`);
    for (const p of problems) console.log(`     ${p}`);
  }
  return bad;
}

function expectFailures(dir) {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort();
  if (files.length === 0) fatal(`no *.yaml fixtures in ${dir}`);
  const renderings = files.map((f) => ({ source: f, text: fs.readFileSync(path.join(dir, f), "utf8") }));
  const { results } = validateAll(renderings);
  let wrong = 0;
  for (const { source, text } of renderings) {
    const expected = [...text.matchAll(/^# expect: (.+)$/gm)].map((m) => m[1].trim());
    const problems = results.get(source);
    const missing = expected.filter((e) => !problems.some((p) => p.includes(e)));
    if (expected.length === 0) {
      wrong++;
      console.log(`FAIL ${source}: has no "# expect:" line`);
    } else if (problems.length === 0) {
      wrong++;
      console.log(`FAIL ${source}: accepted, but it is broken`);
    } else if (missing.length) {
      wrong++;
      console.log(
        `FAIL ${source}: rejected without ${JSON.stringify(missing)}; got:\n     ${problems.join("\n     ")}`,
      );
    } else console.log(`ok   ${source}: rejected\n     ${problems.join("\n     ")}`);
  }
  console.log(`${files.length - wrong} passed, ${wrong} failed`);
  return wrong ? 1 : 0;
}

function main(argv) {
  console.log(`validate: Kubernetes ${KUBERNETES_SCHEMA} schema; ${versions.join(", ")}`);
  if (argv[0] === "--expect-failures") {
    if (argv.length !== 2) fatal("usage: validate.js --expect-failures DIR");
    return expectFailures(path.resolve(argv[1]));
  }
  console.log(`validate: ${checkKustomize()}`);
  const dirs = argv.length ? argv.map((d) => path.resolve(d)) : findKustomizations(K8S_DIR);
  if (dirs.length === 0) fatal(`no kustomization.yaml under ${K8S_DIR}`);
  const renderings = dirs.map((d) => ({ source: path.relative(process.cwd(), d) || ".", text: render(d) }));
  const { results, count } = validateAll(renderings);
  const bad = report(results);
  console.log(`validate: ${dirs.length} kustomization(s), ${count} object(s)`);
  console.log(`${dirs.length - bad} passed, ${bad} failed`);
  return bad ? 1 : 0;
}

module.exports = {
  YAML,
  K8S_DIR,
  checkKustomize,
  findKustomizations,
  render,
  parseDocuments,
  configOf,
  ocigatePaths,
  fatal,
};
if (require.main === module) process.exitCode = main(process.argv.slice(2));
