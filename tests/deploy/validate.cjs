#!/usr/bin/env node
// Offline validation of rendered Kubernetes manifests (tests/deploy/check_k8s.sh
// runs it from the folder where `npm ci` installed package.json's packages).
//
//   node validate.cjs check --source SRC_DIR ROLE=FILE ...
//   node validate.cjs compare FILE_A FILE_B
//
// check: every object in every FILE (a `kubectl kustomize` output) must be
//   1. valid against its Kubernetes schema: kubernetes-models' validators,
//      generated from the Kubernetes OpenAPI spec (and the prometheus-operator
//      CRDs for ServiceMonitor) — types, required fields, enums, formats;
//   2. free of unknown fields: the object is type-checked by the TypeScript
//      compiler against the same models' interfaces, whose excess-property
//      check rejects any field name the API does not define, at any depth
//      (the JSON schemas above allow unknown fields, as the API server's
//      non-strict mode does);
//   3. for ROLE cpu or gpu (an overlay), consistent with what lethe needs
//      (checkInvariants below). ROLE secrets names the rendered Secret
//      templates, which the overlays' references are checked against.
//   An object of a kind without a schema here, or of an API version that is
//   not stable (STABLE_API_VERSIONS), is an error, never skipped.
// compare: the two renders hold the same objects, ignoring order and the
//   content-hash suffix of generated ConfigMaps (its algorithm differs
//   between kustomize versions).
//
// Exit status 0 when everything holds, 1 with one line per problem otherwise.
"use strict";

const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

const problems = [];
function problem(where, message) {
  problems.push(`${where}: ${message}`);
}

function loadObjects(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  const objects = [];
  for (const doc of docs) {
    if (doc.errors.length) {
      throw new Error(`${file}: YAML error: ${doc.errors[0].message}`);
    }
    const obj = doc.toJSON();
    if (obj !== null && obj !== undefined) objects.push(obj);
  }
  return objects;
}

const idOf = (o) =>
  `${o.kind || "?"}/${(o.metadata && o.metadata.name) || "?"}`;

// --- 1 and 2: schemas and field names -------------------------------------

// The module of kubernetes-models that holds apiVersion/kind, or null.
function modelModule(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") return null;
  if (!/^[A-Za-z0-9]+$/.test(kind)) return null;
  const [group, version] = apiVersion.includes("/")
    ? apiVersion.split("/")
    : ["", apiVersion];
  if (group === "monitoring.coreos.com") {
    return `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`;
  }
  return group
    ? `kubernetes-models/${group}/${version}/${kind}`
    : `kubernetes-models/${version}/${kind}`;
}

function loadModel(mod, kind) {
  try {
    const Model = require(mod)[kind];
    return typeof Model === "function" ? Model : null;
  } catch (e) {
    return null;
  }
}

// kubernetes-models also carries API versions that Kubernetes has since
// removed (policy/v1beta1, autoscaling/v2beta2, ...). Manifests may use only
// these stable group versions, served by every Kubernetes from 1.25 on.
const STABLE_API_VERSIONS = new Set([
  "v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2",
  "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1",
  "monitoring.coreos.com/v1",
]);

function checkSchemas(role, objects) {
  const typed = [];
  objects.forEach((obj, i) => {
    const where = `${role}: ${idOf(obj)}`;
    if (!STABLE_API_VERSIONS.has(obj.apiVersion)) {
      problem(where, `apiVersion ${obj.apiVersion} is not one of the stable API versions served by Kubernetes 1.25+ (${[...STABLE_API_VERSIONS].join(", ")})`);
    }
    const mod = modelModule(obj.apiVersion, obj.kind);
    const Model = mod && loadModel(mod, obj.kind);
    if (!Model) {
      problem(where, `no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`);
      return;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      const errors = e.errors || [{ instancePath: "", message: e.message }];
      for (const err of errors) {
        let msg = `${err.instancePath || "/"} ${err.message}`;
        if (err.params && err.params.allowedValues) {
          msg += ` (${err.params.allowedValues.join(", ")})`;
        }
        problem(where, `schema: ${msg}`);
      }
    }
    typed.push({ obj, mod, index: i });
  });
  checkFieldNames(role, typed);
}

// Type-checks `const oN: IKind = <object>` for each object with TypeScript:
// an object literal may only name the properties its type declares, at any
// depth. The compiler reports one error per declaration, so each reported
// property is removed and the objects checked again, until none is left:
// every unknown field is reported, not only the first of each object.
function checkFieldNames(role, typed) {
  if (typed.length === 0) return;
  const ts = require("typescript");
  const options = {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    types: [],
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
  };
  // Created next to node_modules, so that the imports resolve.
  const dir = fs.mkdtempSync(path.join(__dirname, ".tscheck-"));
  const file = path.join(dir, "objects.ts");
  // The models' declaration files are parsed once for all rounds.
  const host = ts.createCompilerHost(options);
  const cache = new Map();
  const getSourceFile = host.getSourceFile;
  host.getSourceFile = (name, ...rest) => {
    if (path.resolve(name) === file) return getSourceFile.call(host, name, ...rest);
    if (!cache.has(name)) cache.set(name, getSourceFile.call(host, name, ...rest));
    return cache.get(name);
  };
  const work = typed.map(({ obj, mod }) => ({
    obj, mod, copy: JSON.parse(JSON.stringify(obj)), done: false,
  }));
  try {
    let program;
    for (let round = 0; round < 100; round++) {
      const lines = [];
      const spans = [];
      work.forEach((w, n) => {
        lines.push(`import type { I${w.obj.kind} as T${n} } from ${JSON.stringify(w.mod)};`);
      });
      work.forEach((w, n) => {
        if (w.done) return;
        const first = lines.length;
        const literal = JSON.stringify(w.copy, null, 2).split(JSON.stringify(ANY)).join("(0 as any)");
        lines.push(...`export const o${n}: T${n} = ${literal};`.split("\n"));
        spans.push({ first, last: lines.length - 1, w });
      });
      fs.writeFileSync(file, lines.join("\n") + "\n");
      program = ts.createProgram([file], options, host, program);
      let progressed = false;
      for (const d of ts.getPreEmitDiagnostics(program)) {
        const text = ts.flattenDiagnosticMessageText(d.messageText, " ")
          .replace(/'"([^"']*)"'/g, "'$1'");
        if (!d.file || path.resolve(d.file.fileName) !== file) {
          problem(role, `type check: ${text}`);
          continue;
        }
        const { line } = d.file.getLineAndCharacterOfPosition(d.start);
        const span = spans.find((s) => line >= s.first && line <= s.last);
        if (!span) {
          problem(role, `type check (line ${line + 1}): ${text}`);
          continue;
        }
        const at = jsonPathAt(lines, span.first, line);
        const shown = at.map((k) => (typeof k === "number" ? `[${k}]` : `.${k}`)).join("").replace(/^\./, "") || "/";
        problem(`${role}: ${idOf(span.w.obj)}`, `fields: ${shown}: ${text}`);
        // An unknown property is removed; a value of the wrong type becomes
        // `any`, so that its parent is not then reported as missing it.
        const excess = d.code === 2353 || d.code === 2561;
        if (at.length === 0 || !replaceAt(span.w.copy, at, excess ? undefined : ANY)) span.w.done = true;
        else progressed = true;
      }
      if (!progressed) break;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Stands for a value of any type in the generated source.
const ANY = "__lethe_any__";

// Removes the value at path `at` (value undefined) or replaces it.
function replaceAt(obj, at, value) {
  let v = obj;
  for (const k of at.slice(0, -1)) {
    if (v === null || typeof v !== "object") return false;
    v = v[k];
  }
  const last = at[at.length - 1];
  if (v === null || typeof v !== "object" || !(last in v) || v[last] === ANY) return false;
  if (value !== undefined) v[last] = value;
  else if (Array.isArray(v)) v.splice(last, 1);
  else delete v[last];
  return true;
}

// The path (["spec", "template", ..., 0, "imagee"]) of the value on `line`
// of `export const oN: TN = <JSON.stringify(obj, null, 2)>;` starting at
// `first`.
function jsonPathAt(lines, first, line) {
  const stack = []; // open containers: {key, isArray, next}
  let key = null;
  for (let i = first; i <= line; i++) {
    const t = (i === first ? lines[i].replace(/^.*?= /, "") : lines[i]).trim();
    if (/^[\]}]/.test(t)) {
      stack.pop();
      continue;
    }
    const parent = stack[stack.length - 1];
    const m = t.match(/^("(?:[^"\\]|\\.)*"):\s*(.*)$/);
    key = m ? JSON.parse(m[1]) : parent && parent.isArray ? parent.next++ : null;
    const rest = m ? m[2] : t;
    if (i < line && /[[{]$/.test(rest)) {
      stack.push({ key, isArray: rest.endsWith("["), next: 0 });
    }
  }
  return [...stack.map((s) => s.key), key].filter((k) => k !== null);
}

// --- 3: what lethe needs --------------------------------------------------

// Option names (`database-url`, ...) of the option tables in a main.cc:
// every function returning OptionSpecs (Options(), or parts of it such as
// the server's LimitOptions) up to Options()'s `return *specs;`.
function optionNames(file) {
  const text = fs.readFileSync(file, "utf8");
  const first = text.match(/^(const )?std::vector<OptionSpec>&? \w*Options\(/m);
  const start = first ? first.index : -1;
  const end = text.indexOf("return *specs;", start);
  if (start < 0 || end < 0) throw new Error(`${file}: no Options() table`);
  const names = new Set();
  for (const m of text.slice(start, end).matchAll(/^\s*\{"([a-z][a-z0-9-]*)",/gm)) {
    names.add(`LETHE_${m[1].toUpperCase().replace(/-/g, "_")}`);
  }
  if (names.size < 8) throw new Error(`${file}: found only ${names.size} options`);
  return names;
}

// Prometheus job names the shipped rules select on.
function ruleJobs(dir) {
  const jobs = new Set();
  for (const f of fs.readdirSync(dir)) {
    if (!/\.ya?ml$/.test(f)) continue;
    for (const m of fs.readFileSync(path.join(dir, f), "utf8").matchAll(/job="([^"]+)"/g)) {
      jobs.add(m[1]);
    }
  }
  return jobs;
}

const podSpecOf = (o) =>
  (o.kind === "Deployment" || o.kind === "Job") && o.spec && o.spec.template
    ? o.spec.template.spec || {}
    : null;
const podLabelsOf = (o) =>
  (o.spec && o.spec.template && o.spec.template.metadata &&
    o.spec.template.metadata.labels) || {};
const componentOf = (o) =>
  ((o.metadata && o.metadata.labels) || {})["app.kubernetes.io/component"] ||
  podLabelsOf(o)["app.kubernetes.io/component"];
const matches = (selector, labels) =>
  Object.entries(selector || {}).every(([k, v]) => labels[k] === v);
function matchesSelector(sel, labels) {
  if (!sel) return false;
  if (!matches(sel.matchLabels, labels)) return false;
  for (const e of sel.matchExpressions || []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const inValues = has && (e.values || []).includes(labels[e.key]);
    if (e.operator === "In" && !inValues) return false;
    if (e.operator === "NotIn" && inValues) return false;
    if (e.operator === "Exists" && !has) return false;
    if (e.operator === "DoesNotExist" && has) return false;
  }
  return true;
}
const envValue = (c, name) => {
  const e = (c.env || []).find((x) => x.name === name);
  return e ? e.value : undefined;
};
const quantity = (q) => (q === undefined ? undefined : Number(q));
const cpus = (q) =>
  q === undefined ? NaN : /m$/.test(String(q)) ? parseFloat(q) / 1000 : Number(q);
const portOf = (addr) => Number(String(addr || "").split(":").pop());

function checkInvariants(role, objects, ctx) {
  const byKind = (k) => objects.filter((o) => o.kind === k);
  const where = (o) => `${role}: ${idOf(o)}`;
  const configMaps = new Map(byKind("ConfigMap").map((o) => [o.metadata.name, o]));
  const workloads = objects.filter(podSpecOf);
  const pods = workloads.map((o) => ({ owner: o, labels: podLabelsOf(o) }));
  const gpu = role === "gpu";

  // Every LETHE_* variable a container gets, with where it comes from.
  function lethEnv(o, c) {
    const env = new Map();
    for (const from of c.envFrom || []) {
      if (from.configMapRef) {
        const cm = configMaps.get(from.configMapRef.name);
        if (!cm) {
          problem(where(o), `envFrom names ConfigMap ${from.configMapRef.name}, which is not rendered`);
          continue;
        }
        for (const [k, v] of Object.entries(cm.data || {})) env.set(k, { value: v, from: `ConfigMap ${cm.metadata.name}` });
      }
    }
    for (const e of c.env || []) env.set(e.name, { value: e.value, ref: e.valueFrom, from: "env" });
    return env;
  }

  for (const o of workloads) {
    const spec = podSpecOf(o);
    const comp = componentOf(o);
    const known = comp === "worker" ? ctx.workerOptions : ctx.serverOptions;
    const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
    if (spec.automountServiceAccountToken !== false) {
      problem(where(o), "automountServiceAccountToken must be false (lethe never calls the API)");
    }
    for (const c of spec.containers || []) {
      const w = `${where(o)} container ${c.name}`;
      const sc = c.securityContext || {};
      const psc = spec.securityContext || {};
      if (!(sc.runAsNonRoot === true || psc.runAsNonRoot === true)) problem(w, "must set runAsNonRoot: true");
      if (sc.readOnlyRootFilesystem !== true) problem(w, "must set readOnlyRootFilesystem: true");
      if (sc.allowPrivilegeEscalation !== false) problem(w, "must set allowPrivilegeEscalation: false");
      const r = c.resources || {};
      for (const kind of ["requests", "limits"]) {
        for (const res of ["cpu", "memory"]) {
          if (!r[kind] || r[kind][res] === undefined) problem(w, `resources.${kind}.${res} missing`);
        }
      }
      if (!/^lethe(:|@)/.test(c.image || "") && !/\/lethe(:|@)/.test(c.image || "")) {
        problem(w, `image ${c.image} is not the lethe image`);
      }
      const tagged = /:[^/]+$/.test(c.image || "") || (c.image || "").includes("@");
      if (!tagged) problem(w, `image ${c.image} has no tag (set it with the overlay's images:)`);
      for (const m of c.volumeMounts || []) {
        if (!volumes.has(m.name)) problem(w, `volumeMount ${m.name} names no volume`);
      }
      const env = lethEnv(o, c);
      for (const [name, v] of env) {
        if (!name.startsWith("LETHE_")) continue;
        if (v.from === "env" && !known.has(name)) {
          problem(w, `${name} is not an option of ${comp === "worker" ? "lethe-worker" : "lethe"}`);
        }
        if (v.ref && v.ref.secretKeyRef) {
          const { name: s, key } = v.ref.secretKeyRef;
          if (!ctx.secrets.has(s)) problem(w, `${name} reads Secret ${s}, which deploy/k8s/secrets does not define`);
          else if (!ctx.secrets.get(s).has(key)) problem(w, `${name} reads key ${key} of Secret ${s}, which has no such key`);
        }
      }
      if (!env.has("LETHE_DATABASE_URL")) problem(w, "no LETHE_DATABASE_URL");
      // Files named by LETHE_SECRETS_FILE, LETHE_TLS_*, LETHE_PUBLIC_KEYS
      // and LETHE_SIGNING_KEYS must be keys of a Secret mounted at their
      // directory. Only workers hold signing keys (issue 17, item 8).
      const files = [];
      const value = (name) => String((env.get(name) || {}).value || "");
      if (comp === "server") {
        for (const name of ["LETHE_SECRETS_FILE", "LETHE_TLS_CERT", "LETHE_TLS_KEY", "LETHE_PUBLIC_KEYS"]) {
          if (!value(name)) problem(w, `${name} is empty`);
          files.push(...value(name).split(","));
        }
        if (value("LETHE_SIGNING_KEYS")) problem(w, "LETHE_SIGNING_KEYS is set: the server must hold no private key (workers sign)");
        if (value("LETHE_INSECURE_PLAINTEXT") || value("LETHE_INSECURE_PLAINTEXT_NON_LOOPBACK")) {
          problem(w, "the server must serve TLS, not plaintext");
        }
      }
      if (comp === "worker") {
        files.push(...value("LETHE_SIGNING_KEYS").split(","));
        if (!value("LETHE_SIGNING_KEYS")) {
          problem(w, "LETHE_SIGNING_KEYS is empty: certificates and checkpoints would go unsigned");
        }
      }
      for (const f of files.map((s) => s.trim()).filter(Boolean)) {
        const mount = (c.volumeMounts || []).find((m) => path.posix.dirname(f) === m.mountPath.replace(/\/$/, ""));
        const vol = mount && volumes.get(mount.name);
        if (!vol || !vol.secret) {
          problem(w, `${f} is not in a mounted Secret volume`);
          continue;
        }
        const keys = ctx.secrets.get(vol.secret.secretName);
        if (!keys) problem(w, `volume ${mount.name} mounts Secret ${vol.secret.secretName}, which deploy/k8s/secrets does not define`);
        else if (!keys.has(path.posix.basename(f))) problem(w, `${f}: Secret ${vol.secret.secretName} has no key ${path.posix.basename(f)}`);
      }
      const argv = [...(c.command || []), ...(c.args || [])].map((a) => path.posix.basename(a));
      const want = { server: ["lethe", "serve"], worker: ["lethe-worker"], migrate: ["lethe", "migrate"] }[comp];
      if (!want) problem(w, `unknown app.kubernetes.io/component ${comp}`);
      else if (want.some((a, n) => argv[n] !== a)) {
        problem(w, `runs \`${argv.join(" ")}\`, not \`${want.join(" ")}\``);
      }
      if (comp === "server") checkServer(o, c, env, w);
      if (comp === "worker") checkWorker(o, spec, c, env, w);
      if (c.image && /-cuda$/.test(c.image) !== (gpu && comp === "worker")) {
        problem(w, gpu && comp === "worker"
          ? `image ${c.image}: GPU workers need the -cuda image`
          : `image ${c.image}: only GPU workers use the -cuda image`);
      }
    }
    for (const v of spec.volumes || []) {
      if (v.secret && !ctx.secrets.has(v.secret.secretName)) {
        problem(where(o), `volume ${v.name} mounts Secret ${v.secret.secretName}, which deploy/k8s/secrets does not define`);
      }
    }
  }
  for (const cm of configMaps.values()) {
    for (const k of Object.keys(cm.data || {})) {
      if (k.startsWith("LETHE_") && !ctx.serverOptions.has(k) && !ctx.workerOptions.has(k)) {
        problem(where(cm), `${k} is an option of neither lethe nor lethe-worker`);
      }
    }
  }

  function checkServer(o, c, env, w) {
    const ports = new Map((c.ports || []).map((p) => [p.name, p.containerPort]));
    if (!ports.has("grpc")) problem(w, "no containerPort named grpc");
    if (portOf((env.get("LETHE_LISTEN") || {}).value) !== ports.get("grpc")) {
      problem(w, "LETHE_LISTEN does not listen on the grpc containerPort");
    }
    if (portOf((env.get("LETHE_METRICS_LISTEN") || {}).value) !== 9464 || ports.get("metrics") !== 9464) {
      problem(w, "server metrics must be LETHE_METRICS_LISTEN on port 9464, containerPort metrics");
    }
    // The kubelet's grpc probes speak plaintext only: the server's probes
    // run `lethectl health` over TLS against its own grpc port.
    const tlsDir = path.posix.dirname(String((env.get("LETHE_TLS_CERT") || {}).value || ""));
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      const p = c[probe];
      const argv = (p && p.exec && p.exec.command) || [];
      const arg = (flag) => argv[argv.indexOf(flag) + 1];
      if (!p) problem(w, `${probe} missing`);
      else if (argv[0] !== "lethectl" || argv[1] !== "health") problem(w, `${probe} must run \`lethectl health\` (grpc.health.v1 over TLS)`);
      else if (portOf(arg("--addr")) !== ports.get("grpc")) problem(w, `${probe} checks ${arg("--addr")}, not the grpc port`);
      else if (!argv.includes("--tls-ca") || path.posix.dirname(arg("--tls-ca")) !== tlsDir) {
        problem(w, `${probe} must trust the CA of the mounted TLS Secret (--tls-ca ${tlsDir}/ca.crt)`);
      }
    }
    const grace = o.spec.template.spec.terminationGracePeriodSeconds;
    const drain = Number((env.get("LETHE_SHUTDOWN_GRACE_SECONDS") || { value: 30 }).value);
    if (!(grace > drain)) problem(w, `terminationGracePeriodSeconds ${grace} must exceed LETHE_SHUTDOWN_GRACE_SECONDS ${drain}`);
  }

  function checkWorker(o, spec, c, env, w) {
    const grace = spec.terminationGracePeriodSeconds === undefined ? 30 : spec.terminationGracePeriodSeconds;
    const drain = Number((env.get("LETHE_DRAIN_SECONDS") || { value: 30 }).value);
    if (!(grace > drain)) {
      problem(w, `terminationGracePeriodSeconds ${grace} must exceed LETHE_DRAIN_SECONDS ${drain}`);
    }
    if (portOf((env.get("LETHE_METRICS_LISTEN") || {}).value) !== 9465) {
      problem(w, "worker metrics must be LETHE_METRICS_LISTEN on port 9465");
    }
    const device = (env.get("LETHE_DEVICE") || {}).value;
    const r = c.resources || {};
    const gpus = [quantity((r.requests || {})["nvidia.com/gpu"]), quantity((r.limits || {})["nvidia.com/gpu"])];
    if (gpu) {
      if (!/^cuda:\d+$/.test(device || "")) problem(w, `LETHE_DEVICE is ${device}, not cuda:N`);
      if (!(gpus[0] >= 1 && gpus[1] === gpus[0])) {
        problem(w, "must request nvidia.com/gpu (requests equal to limits, at least 1)");
      }
      if (!(spec.tolerations || []).some((t) => t.key === "nvidia.com/gpu")) problem(w, "no toleration for nvidia.com/gpu");
      if (!spec.nodeSelector || Object.keys(spec.nodeSelector).length === 0) problem(w, "no nodeSelector for GPU nodes");
    } else {
      if (device !== "cpu") problem(w, `LETHE_DEVICE is ${device}, not cpu`);
      if (gpus.some((g) => g !== undefined)) problem(w, "a CPU worker must not request nvidia.com/gpu");
    }
    // LibTorch sizes its thread pool from the node's cores, not the pod's
    // CPU limit: LETHE_THREADS must be explicit and fit in the limit.
    const concurrency = Number((env.get("LETHE_CONCURRENCY") || { value: 1 }).value);
    const threads = Number((env.get("LETHE_THREADS") || { value: 0 }).value);
    const cpuLimit = cpus((r.limits || {}).cpu);
    if (!(threads > 0)) problem(w, "LETHE_THREADS must be set (0 means every core of the node)");
    else if (!(concurrency * threads <= cpuLimit)) {
      problem(w, `LETHE_CONCURRENCY x LETHE_THREADS = ${concurrency * threads} exceeds the CPU limit ${(r.limits || {}).cpu}`);
    }
  }

  // Selectors must select something.
  for (const s of byKind("Service")) {
    const selected = pods.filter((p) => matches(s.spec.selector, p.labels));
    if (selected.length === 0) problem(where(s), "selects no pod");
    for (const port of s.spec.ports || []) {
      const ok = selected.every((p) =>
        podSpecOf(p.owner).containers.some((c) => (c.ports || []).some((cp) =>
          cp.name === port.targetPort || cp.containerPort === port.targetPort)));
      if (!ok) problem(where(s), `port ${port.name}: targetPort ${port.targetPort} is not a container port`);
    }
  }
  for (const o of [...byKind("PodDisruptionBudget"), ...byKind("NetworkPolicy")]) {
    const sel = o.kind === "NetworkPolicy" ? o.spec.podSelector : o.spec.selector;
    if (!pods.some((p) => matchesSelector(sel, p.labels))) problem(where(o), "selects no pod");
  }
  for (const o of byKind("Deployment")) {
    if (!matchesSelector(o.spec.selector, podLabelsOf(o))) problem(where(o), "selector does not match its pod template");
  }
  const deployments = new Set(byKind("Deployment").map((o) => o.metadata.name));
  const hpas = byKind("HorizontalPodAutoscaler");
  for (const h of hpas) {
    if (h.spec.scaleTargetRef.kind !== "Deployment" || !deployments.has(h.spec.scaleTargetRef.name)) {
      problem(where(h), `scaleTargetRef ${h.spec.scaleTargetRef.name} is not a rendered Deployment`);
    }
    const target = byKind("Deployment").find((d) => d.metadata.name === h.spec.scaleTargetRef.name);
    if (target && target.spec.replicas !== undefined) {
      problem(where(target), "sets replicas although an HPA scales it (every apply would reset the count)");
    }
  }
  const server = byKind("Deployment").find((o) => componentOf(o) === "server");
  const worker = byKind("Deployment").find((o) => componentOf(o) === "worker");
  if (!server) problem(role, "no server Deployment (app.kubernetes.io/component=server)");
  if (!worker) problem(role, "no worker Deployment (app.kubernetes.io/component=worker)");
  if (server && !hpas.some((h) => h.spec.scaleTargetRef.name === server.metadata.name)) {
    problem(role, "no HorizontalPodAutoscaler for the server");
  }
  if (server && !byKind("PodDisruptionBudget").some((p) => matchesSelector(p.spec.selector, podLabelsOf(server)))) {
    problem(role, "no PodDisruptionBudget for the server");
  }
  if (!byKind("Job").some((j) => (j.spec.template.spec.containers || []).some((c) => (c.args || [])[0] === "migrate"))) {
    problem(role, "no `lethe migrate` Job");
  }

  // ServiceMonitor: the job label of each scraped Service must be one the
  // rules select on, and every job the rules use must be scraped.
  const monitors = byKind("ServiceMonitor");
  if (monitors.length === 0) problem(role, "no ServiceMonitor");
  const scrapedJobs = new Set();
  for (const m of monitors) {
    const services = byKind("Service").filter((s) => matchesSelector(m.spec.selector, s.metadata.labels || {}));
    if (services.length === 0) problem(where(m), "selects no Service");
    for (const s of services) {
      const job = m.spec.jobLabel ? (s.metadata.labels || {})[m.spec.jobLabel] : s.metadata.name;
      if (!job) problem(where(m), `Service ${s.metadata.name} has no label ${m.spec.jobLabel} (its job name)`);
      else scrapedJobs.add(job);
      for (const ep of m.spec.endpoints || []) {
        if (!(s.spec.ports || []).some((p) => p.name === ep.port)) {
          problem(where(m), `endpoint port ${ep.port} is not a port of Service ${s.metadata.name}`);
        }
      }
    }
  }
  const want = [...ctx.ruleJobs].sort().join(", ");
  const got = [...scrapedJobs].sort().join(", ");
  if (want !== got) problem(role, `ServiceMonitor jobs {${got}} differ from the jobs deploy/prometheus/rules select {${want}}`);
}

// The Secret templates: names and keys, and placeholders only.
function secretKeys(objects) {
  const secrets = new Map();
  for (const s of objects) {
    if (s.kind !== "Secret") {
      problem(`secrets: ${idOf(s)}`, "only Secrets belong in deploy/k8s/secrets");
      continue;
    }
    const values = { ...(s.data || {}), ...(s.stringData || {}) };
    secrets.set(s.metadata.name, new Set(Object.keys(values)));
    for (const [k, v] of Object.entries(s.stringData || {})) {
      if (!String(v).includes("REPLACE-ME")) {
        problem(`secrets: ${idOf(s)}`, `key ${k} holds a value, not a REPLACE-ME placeholder`);
      }
    }
    if (s.data && Object.keys(s.data).length) {
      problem(`secrets: ${idOf(s)}`, "templates use stringData placeholders, not data");
    }
  }
  // lethe refuses a subject-key secret under 32 bytes: the placeholder must
  // be refused rather than used as a key published in this repository.
  const subject = objects.find((s) => s.metadata && s.metadata.name === "lethe-subject-key");
  if (subject && Object.values(subject.stringData || {}).some((v) => Buffer.byteLength(String(v).trim()) >= 32)) {
    problem("secrets: Secret/lethe-subject-key", "the placeholder must be shorter than 32 bytes so that lethe refuses it");
  }
  return secrets;
}

// --- compare ---------------------------------------------------------------

function normalized(file) {
  let text = fs.readFileSync(file, "utf8");
  const hashed = new Set();
  for (const o of loadObjects(file)) {
    const name = o.metadata && o.metadata.name;
    if ((o.kind === "ConfigMap" || o.kind === "Secret") && /-[a-z0-9]{10}$/.test(name || "")) {
      hashed.add(name);
    }
  }
  for (const name of hashed) {
    text = text.split(name).join(name.replace(/-[a-z0-9]{10}$/, "-<hash>"));
  }
  const map = new Map();
  for (const doc of YAML.parseAllDocuments(text)) {
    const o = doc.toJSON();
    if (o) map.set(`${o.apiVersion} ${idOf(o)}`, canonical(o));
  }
  return map;
}
function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  }
  return v;
}

// --- main ------------------------------------------------------------------

function main(argv) {
  const [cmd, ...rest] = argv;
  if (cmd === "compare" && rest.length === 2) {
    const [a, b] = rest.map(normalized);
    for (const k of new Set([...a.keys(), ...b.keys()])) {
      if (!a.has(k)) problem(k, `only in ${rest[1]}`);
      else if (!b.has(k)) problem(k, `only in ${rest[0]}`);
      else if (JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k))) {
        problem(k, `differs:\n  ${JSON.stringify(a.get(k))}\n  ${JSON.stringify(b.get(k))}`);
      }
    }
    if (!problems.length) console.log(`same ${a.size} objects (generated ConfigMap names compared without their hash suffix)`);
  } else if (cmd === "check") {
    let source = null;
    const renders = [];
    for (let i = 0; i < rest.length; i++) {
      if (rest[i] === "--source") source = rest[++i];
      else {
        const eq = rest[i].indexOf("=");
        if (eq <= 0) throw new Error(`expected ROLE=FILE, got ${rest[i]}`);
        renders.push({ role: rest[i].slice(0, eq), file: rest[i].slice(eq + 1) });
      }
    }
    if (!renders.length) throw new Error("nothing to check");
    const loaded = renders.map((r) => ({ ...r, objects: loadObjects(r.file) }));
    for (const r of loaded) {
      if (r.objects.length === 0) problem(r.role, `${r.file} holds no object`);
      checkSchemas(r.role, r.objects);
    }
    const overlays = loaded.filter((r) => r.role === "cpu" || r.role === "gpu");
    if (overlays.length) {
      if (!source) throw new Error("--source is needed to check overlays");
      const secrets = loaded.find((r) => r.role === "secrets");
      if (!secrets) throw new Error("secrets=FILE is needed to check overlays");
      const ctx = {
        serverOptions: optionNames(path.join(source, "server/main.cc")),
        workerOptions: optionNames(path.join(source, "worker/main.cc")),
        ruleJobs: ruleJobs(path.join(source, "deploy/prometheus/rules")),
        secrets: secretKeys(secrets.objects),
      };
      if (ctx.ruleJobs.size === 0) throw new Error("deploy/prometheus/rules name no job");
      for (const r of overlays) checkInvariants(r.role, r.objects, ctx);
    }
    for (const r of loaded) {
      console.log(`${r.role}: ${r.objects.length} objects (${[...new Set(r.objects.map((o) => o.kind))].join(", ")})`);
    }
  } else {
    throw new Error("usage: validate.cjs check --source DIR ROLE=FILE... | compare A B");
  }
  for (const p of problems) console.log(`ERROR ${p}`);
  return problems.length ? 1 : 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (e) {
  console.error(`validate.cjs: ${e.message}`);
  process.exitCode = 2;
}
