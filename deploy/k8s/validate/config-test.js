#!/usr/bin/env node
// Feeds the ocigate.yaml of every rendered kustomization under deploy/k8s to ocigate itself: the ConfigMap a
// StatefulSet runs with must pass ocigate's own configuration and policy loading, or the pod would exit 2
// at start. The pod's mounts are laid out under a temp dir (paths in the file are moved there; a secret
// file it names gets a stand-in), then `ocigate cache verify --config FILE` loads it all and checks the
// empty cache: exit 0. As a control, one copy with a bad policy action must be refused (exit 2).
//   OCIGATE_BIN=build/test/ocigate node config-test.js
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawnSync } = require("child_process");
const v = require("./validate.js");

const bin = process.env.OCIGATE_BIN && path.resolve(process.env.OCIGATE_BIN);
if (!bin || !fs.existsSync(bin)) v.fatal(`OCIGATE_BIN must name the ocigate binary (got '${bin || ""}')`);

// Each rendered ocigate container: { source, config text, its volume mounts }.
function ocigateContainers(dir) {
  const text = v.render(dir);
  if (typeof text !== "string") v.fatal(text.error);
  const problems = [];
  const objects = v.parseDocuments(text, problems, dir);
  if (problems.length) v.fatal(problems.join("; "));
  const found = [];
  for (const w of objects.filter((o) => o.kind === "StatefulSet" || o.kind === "Deployment")) {
    for (const c of w.spec.template.spec.containers || []) {
      const config = v.configOf(c, w.spec.template, objects);
      if (config && typeof config.text === "string") found.push({ text: config.text, mounts: c.volumeMounts || [] });
    }
  }
  return found;
}

// Moves every path under a mount into root, and gives each file the config names a stand-in.
function layOut(text, mounts, root) {
  const prefixes = mounts
    .map((m) => m.mountPath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .sort((a, b) => b.length - a.length);
  const at = new RegExp(`(^|[\\s"'])(${prefixes.join("|")})(?=[/\\s"']|$)`, "gm");
  const moved = text.replace(at, (_, before, p) => before + path.join(root, p));
  for (const [key, file] of v.ocigatePaths(v.YAML.parse(moved))) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `stand-in for ${key}\n`, { mode: 0o600 });
  }
  const file = path.join(root, "ocigate.yaml");
  fs.writeFileSync(file, moved);
  return file;
}

function runOcigate(file, cwd) {
  const r = spawnSync(bin, ["cache", "verify", "--config", file], { cwd, encoding: "utf8", timeout: 60000 });
  return { code: r.status, output: `${r.stdout || ""}${r.stderr || ""}`.trim() || String(r.error || "") };
}

function check(name, text, mounts, wantCode, wantText) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ocigate-k8s-config-"));
  try {
    const got = runOcigate(layOut(text, mounts, root), root);
    const ok = got.code === wantCode && (!wantText || got.output.includes(wantText));
    const why = ok ? "" : `, expected ${wantCode}\n     ${got.output.split("\n").join("\n     ")}`;
    console.log(`${ok ? "ok  " : "FAIL"} ${name}: exit ${got.code}${why}`);
    return ok;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function main() {
  console.log(`config-test: ${v.checkKustomize()}; ${bin}`);
  let passed = 0;
  let failed = 0;
  let control = null;
  for (const dir of v.findKustomizations(v.K8S_DIR)) {
    const source = path.relative(v.K8S_DIR, dir);
    for (const { text, mounts } of ocigateContainers(dir)) {
      if (check(`${source}: ocigate.yaml loads`, text, mounts, 0)) passed++;
      else failed++;
      control = control || { text, mounts };
    }
  }
  if (!control) v.fatal("no kustomization under deploy/k8s runs ocigate with --config");
  const broken = control.text.replace(/^(\s+)non-root-user: block$/m, "$1non-root-user: blok");
  if (broken === control.text) v.fatal("control: policy.checks.non-root-user: block not found to break");
  if (check("control: a bad policy action is refused", broken, control.mounts, 2, "non-root-user")) passed++;
  else failed++;
  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

process.exitCode = main();
