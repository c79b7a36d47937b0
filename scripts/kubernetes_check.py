#!/usr/bin/env python3
"""Does with deploy/kubernetes/*.yaml what a cluster would, without a cluster.

1. Validates every manifest against the Kubernetes API's schema, strictly
   (unknown fields are errors), with kubernetes-validate's Python API.
2. Checks what the API server and the controllers would refuse or never
   match: Deployment selectors against their pod labels, the Service and
   PodDisruptionBudget selectors, named ports, the Secret and ConfigMap the
   pods refer to.
3. Acts as a tiny kubelet for the console and worker Deployments: for every
   replica it builds the container's environment exactly as the manifest
   says (image ENV from deploy/Dockerfile, envFrom, env with secretKeyRef,
   configMapKeyRef and fieldRef, `$(VAR)` expansion, the Service links a
   kubelet adds), materialises the volumes it mounts, starts the image's
   entrypoint (the `sluice` binary given) with the container's args, and
   waits for the startup, readiness and liveness probes -- consoles first,
   then workers, as deploy/README.md applies them. Only paths (into
   temporary directories standing for the volumes) and listen addresses (to
   free ports of 127.0.0.1) are remapped; every other value is the
   manifest's. A container that exits is restarted as the kubelet would,
   and counted as a failure at the end.
4. Signs in to every console as `admin` with the Secret's password and
   checks that `GET /api/v1/workers` lists every worker pod by its name, up,
   with the slots the manifest gives it, and that `/metrics` takes the
   Secret's metrics token.
5. Sends SIGTERM to every worker, then every console, and checks each exits
   cleanly within its pod's terminationGracePeriodSeconds (a worker is then
   listed as stopped: drained, not lost).

Usage: kubernetes_check.py --sluice target/debug/sluice --database-url postgres://...
(scripts/kubernetes-check.sh installs kubernetes-validate and runs this).
Any failure prints what failed and the tail of every process's log; the
processes are killed in all cases.
"""

import argparse
import base64
import ctypes
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from kubernetes_validate import utils as kubernetes_validate

REPO = Path(__file__).resolve().parent.parent
# How long a pod may take to pass its probes here, whatever the manifest
# allows (the console's startupProbe allows 120 s): a debug build on a local
# database starts in a few seconds.
PROBE_BUDGET_S = 60.0
# Restarts of one container before the check gives up on it.
MAX_RESTARTS = 2
# Every pod started, so that all of them are killed whatever happens.
ALL_PODS = []
# Kubernetes' own default when a pod does not set one.
DEFAULT_GRACE_S = 30
# A made-up cluster for the downward API and the Service links.
NODE_NAME = "node-1"


class Failure(Exception):
    """A check that failed; its message says which and why."""


def log(message):
    print(f"kubernetes-check: {message}", flush=True)


# --- 1. Schema ---------------------------------------------------------------


def load_manifests(directory):
    """Every object of every *.yaml in `directory`, with the file it came from."""
    objects = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                objects.append((path.name, document))
    if not objects:
        raise Failure(f"no manifests in {directory}")
    return objects


def validate_schemas(objects):
    """kubernetes-validate --strict on every object; a missing schema (an
    unknown kind or apiVersion) is an error too, not the CLI's warning."""
    version = kubernetes_validate.latest_version()
    errors = []
    for filename, document in objects:
        name = f"{filename}: {document.get('kind')}/{document.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{name}: {path}: {e.message}")
        except Exception as e:  # SchemaNotFoundError, InvalidSchemaError, ...
            errors.append(f"{name}: {getattr(e, 'message', e)}")
    if errors:
        raise Failure(f"the manifests do not validate against Kubernetes {version}:\n  " + "\n  ".join(errors))
    log(f"{len(objects)} objects validate strictly against Kubernetes {version}")


# --- 2. What the API server and controllers would refuse ---------------------


def by_kind(objects, kind):
    return {d["metadata"]["name"]: d for _, d in objects if d["kind"] == kind}


def selects(selector, labels):
    """matchLabels only: the manifests use nothing else (matchExpressions fails)."""
    if set(selector) - {"matchLabels"}:
        raise Failure(f"selector {selector}: only matchLabels is supported by this check")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def check_references(objects):
    namespaces = set(by_kind(objects, "Namespace"))
    for filename, d in objects:
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") not in namespaces:
            raise Failure(f"{filename}: {d['kind']}/{d['metadata']['name']} is not in a namespace of the manifests")
    deployments = by_kind(objects, "Deployment")
    pod_labels = {name: d["spec"]["template"]["metadata"].get("labels", {}) for name, d in deployments.items()}
    for name, d in deployments.items():
        # The API server refuses a Deployment whose selector misses its pods.
        if not selects(d["spec"]["selector"], pod_labels[name]):
            raise Failure(f"Deployment {name}: spec.selector does not select its own pod template's labels")
    for name, pdb in by_kind(objects, "PodDisruptionBudget").items():
        if not any(selects(pdb["spec"]["selector"], labels) for labels in pod_labels.values()):
            raise Failure(f"PodDisruptionBudget {name}: its selector matches no Deployment's pods")
    for name, service in by_kind(objects, "Service").items():
        selector = {"matchLabels": service["spec"].get("selector", {})}
        targets = [n for n, labels in pod_labels.items() if selects(selector, labels)]
        if not targets:
            raise Failure(f"Service {name}: its selector matches no Deployment's pods")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for deployment in targets:
                containers = deployments[deployment]["spec"]["template"]["spec"]["containers"]
                declared = [p for c in containers for p in c.get("ports", [])]
                if isinstance(target, str) and not any(p.get("name") == target for p in declared):
                    raise Failure(f"Service {name}: targetPort `{target}` is no named port of Deployment {deployment}")
    log("selectors, named ports and namespaces agree")


# --- 3. The tiny kubelet -------------------------------------------------------


def image_config(dockerfile):
    """ENTRYPOINT, WORKDIR and ENV of the Dockerfile's last stage."""
    entrypoint, workdir, env = None, "/", {}
    for line in dockerfile.read_text().splitlines():
        words = line.strip().split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "FROM":
            entrypoint, workdir, env = None, "/", {}
        elif words[0] == "ENTRYPOINT":
            entrypoint = json.loads(words[1])
        elif words[0] == "WORKDIR":
            workdir = words[1]
        elif words[0] == "ENV":
            for pair in shlex.split(words[1]):
                key, _, value = pair.partition("=")
                env[key] = value
    if not entrypoint or Path(entrypoint[0]).name != "sluice":
        raise Failure(f"{dockerfile}: the image's ENTRYPOINT is {entrypoint}, not the sluice binary")
    return entrypoint, workdir, env


def expand(text, env):
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, unknown ones
    stay as written, `$$` is a literal `$`."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def service_links(services, namespace):
    """The variables a kubelet adds for every Service of the pod's namespace
    (enableServiceLinks defaults to true), Docker-link style."""
    env = {}
    # The API server's own Service (every pod gets it), then the namespace's,
    # with made-up cluster IPs.
    listed = [("kubernetes", [{"name": "https", "port": 443}])]
    listed += [(name, service["spec"]["ports"]) for name, service in sorted(services.items())
               if service["metadata"].get("namespace") == namespace]
    for index, (name, ports) in enumerate(listed):
        ip, prefix = f"10.96.0.{index + 1}", name.upper().replace("-", "_")
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        env[f"{prefix}_PORT"] = f"tcp://{ip}:{ports[0]['port']}"
        for port in ports:
            number, proto = port["port"], port.get("protocol", "TCP")
            if "name" in port:
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(number)
            link = f"{prefix}_PORT_{number}_{proto}"
            env[link] = f"{proto.lower()}://{ip}:{number}"
            env[f"{link}_PROTO"], env[f"{link}_PORT"], env[f"{link}_ADDR"] = proto.lower(), str(number), ip
    return env


def lookup(store, kind, ref):
    """A key of a Secret's or ConfigMap's data; None when an `optional` ref is
    missing (the variable is then left out), a Failure when a required one is
    (the kubelet's CreateContainerConfigError)."""
    source = store.get(ref["name"])
    if source is None or (ref.get("key") is not None and ref["key"] not in source):
        if ref.get("optional"):
            return None
        raise Failure(f"{kind} {ref['name']} (key {ref.get('key')}) is missing: CreateContainerConfigError")
    return source if ref.get("key") is None else source[ref["key"]]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod_name(deployment, replica):
    """Shaped like a ReplicaSet's pod names: NAME-<template hash>-<5 chars>."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    template = json.dumps(deployment["spec"]["template"], sort_keys=True).encode()
    digest = hashlib.sha256(template).digest()
    template_hash = "".join(alphabet[b % len(alphabet)] for b in digest[:10])
    suffix = "".join(alphabet[b % len(alphabet)] for b in hashlib.sha256(digest + bytes([replica])).digest()[:5])
    return f"{deployment['metadata']['name']}-{template_hash}-{suffix}"


class Pod:
    """One replica of a Deployment, its one container run as a local process."""

    def __init__(self, deployment, replica, cluster, root):
        spec = deployment["spec"]["template"]["spec"]
        if len(spec["containers"]) != 1 or spec.get("initContainers"):
            raise Failure(f"Deployment {deployment['metadata']['name']}: "
                          "only one container and no init containers are supported")
        self.container = spec["containers"][0]
        for unsupported in ("command", "lifecycle", "workingDir"):
            if unsupported in self.container:
                raise Failure(f"container {self.container['name']}: `{unsupported}` is not supported by this check")
        self.name = pod_name(deployment, replica)
        self.namespace = deployment["metadata"]["namespace"]
        self.grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
        self.dir = root / self.name
        self.dir.mkdir()
        self.log_path = self.dir / "log"
        self.process = None
        # Exits the kubelet restarted the container after: (code, log tail).
        self.restarts = []
        self.mounts = self.materialise_volumes(spec, cluster)
        # Every containerPort gets a free port of this machine; the probes
        # and the API checks go there.
        self.ports = {p["containerPort"]: free_port() for p in self.container.get("ports", [])}
        self.port_names = {p["name"]: p["containerPort"] for p in self.container.get("ports", []) if "name" in p}
        self.env = self.environment(cluster)
        self.args = [self.remap(expand(a, self.env)) for a in self.container.get("args", [])]
        self.workdir = self.remap(cluster["image"][1])
        # A path the manifest gives that is under no volume would be a path of
        # this machine here; in the pod it is on a read-only root.
        if self.container.get("securityContext", {}).get("readOnlyRootFilesystem", False):
            given = [self.env[v["name"]] for v in self.container.get("env", []) if "value" in v] + self.args
            for value in given:
                if value.startswith("/") and not value.startswith(str(root)):
                    raise Failure(f"pod {self.name}: {value} is under no volume, "
                                  "but the container's root file system is read-only")

    def materialise_volumes(self, spec, cluster):
        """Each mounted volume as a directory of this pod's; returns
        [(mountPath, directory)], longest mountPath first."""
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = []
        for mount in self.container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if volume is None or "subPath" in mount:
                raise Failure(f"pod {self.name}: volumeMount {mount['name']} names no volume (or uses subPath)")
            directory = self.dir / "volumes" / mount["name"]
            directory.mkdir(parents=True)
            if "emptyDir" in volume:
                pass
            elif "secret" in volume or "configMap" in volume:
                kind = "secret" if "secret" in volume else "configMap"
                source = volume[kind]
                name = source.get("secretName") or source.get("name")
                store = cluster["secrets"] if kind == "secret" else cluster["configmaps"]
                data = lookup(store, kind, {"name": name, "optional": source.get("optional")}) or {}
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] not in data:
                        raise Failure(f"pod {self.name}: volume {mount['name']}: "
                                      f"{kind} {name} has no key {item['key']}")
                    path = directory / item["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(data[item["key"]])
                    path.chmod(item.get("mode", source.get("defaultMode", 0o644)))
                # A Secret or ConfigMap volume is read-only in the pod.
                directory.chmod(0o555)
            else:
                raise Failure(f"pod {self.name}: volume {mount['name']}: "
                              "only emptyDir, secret and configMap are supported")
            mounts.append((mount["mountPath"].rstrip("/"), directory))
        return sorted(mounts, key=lambda m: -len(m[0]))

    def remap(self, value):
        """Only paths and listen addresses change: a path under a volume's
        mountPath becomes the same path under that volume's directory here, and
        `0.0.0.0:<containerPort>` becomes 127.0.0.1:<its free port>. Every
        other value reaches the process as the manifest wrote it."""
        for mount_path, directory in self.mounts:
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(directory) + value[len(mount_path):]
        for container_port, port in self.ports.items():
            for wildcard in ("0.0.0.0", "[::]"):
                if value == f"{wildcard}:{container_port}":
                    return f"127.0.0.1:{port}"
        return value

    def environment(self, cluster):
        """The image's ENV, then what the kubelet computes from the manifest
        (envFrom, then env in order, then the Service links it does not
        override), with paths and listen addresses remapped."""
        _, workdir, image_env = cluster["image"]
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOSTNAME": self.name, **image_env}
        # The image's user has its home in WORKDIR (useradd --home-dir).
        env["HOME"] = workdir
        computed = {}
        for source in self.container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = lookup(cluster["configmaps"], "ConfigMap", source["configMapRef"]) or {}
            else:
                data = lookup(cluster["secrets"], "Secret", source["secretRef"]) or {}
            computed.update({prefix + k: v for k, v in data.items()})
        links = service_links(cluster["services"], self.namespace)
        fields = {"metadata.name": self.name, "metadata.namespace": self.namespace,
                  "spec.nodeName": NODE_NAME, "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}
        for var in self.container.get("env", []):
            if "value" in var or "valueFrom" not in var:
                value = expand(var.get("value", ""), {**links, **computed})
            elif "secretKeyRef" in var["valueFrom"]:
                value = lookup(cluster["secrets"], "Secret", var["valueFrom"]["secretKeyRef"])
            elif "configMapKeyRef" in var["valueFrom"]:
                value = lookup(cluster["configmaps"], "ConfigMap", var["valueFrom"]["configMapKeyRef"])
            elif "fieldRef" in var["valueFrom"]:
                path = var["valueFrom"]["fieldRef"]["fieldPath"]
                if path not in fields:
                    raise Failure(f"env {var['name']}: fieldRef {path} is not supported by this check")
                value = fields[path]
            else:
                raise Failure(f"env {var['name']}: {list(var['valueFrom'])} is not supported by this check")
            if value is not None:
                computed[var["name"]] = value
        for key, value in links.items():
            computed.setdefault(key, value)
        env.update(computed)
        # The /tmp volume is where the process's temporary files go.
        for mount_path, directory in self.mounts:
            if mount_path == "/tmp":
                env["TMPDIR"] = str(directory)
        return {k: self.remap(v) for k, v in env.items()}

    def start(self, binary):
        """The image's ENTRYPOINT with the container's args, in WORKDIR."""
        cwd = Path(self.workdir)
        cwd.mkdir(parents=True, exist_ok=True)
        log(f"start pod {self.name}: sluice {' '.join(self.args)}")
        out = open(self.log_path, "ab")
        self.process = subprocess.Popen([binary, *self.args], env=self.env, cwd=cwd, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True, preexec_fn=die_with_parent)
        out.close()

    def url(self, port):
        """http://127.0.0.1:<free port> of a probe's or Service's `port`."""
        container_port = self.port_names.get(port, port)
        if container_port not in self.ports:
            raise Failure(f"pod {self.name}: port {port} is not a port the container declares")
        return f"http://127.0.0.1:{self.ports[container_port]}"

    def exited(self):
        return self.process is not None and self.process.poll() is not None

    def restart(self, binary):
        """restartPolicy Always: the kubelet starts the container again after a
        back-off (10 s, doubling). Recorded: a crash while a fresh deployment
        comes up is a bug even though the pod recovers."""
        self.restarts.append((self.process.returncode, self.tail(5)))
        if len(self.restarts) > MAX_RESTARTS:
            raise Failure(f"pod {self.name}: exited {len(self.restarts)} times (CrashLoopBackOff)")
        back_off = 10 * 2 ** (len(self.restarts) - 1)
        log(f"pod {self.name}: exited with {self.process.returncode}; restarting it in {back_off} s")
        time.sleep(back_off)
        with open(self.log_path, "a") as out:
            out.write(f"--- restart {len(self.restarts)} ---\n")
        self.start(binary)

    def tail(self, lines=40):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(f"    {line}" for line in text[-lines:]) or "    (empty)"


def die_with_parent():
    """The process gets SIGKILL when this script dies, however it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# --- Probes and the API --------------------------------------------------------

# No proxy: the processes are on this machine.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(method, url, body=None, headers=None, timeout=5.0):
    """(status, headers, body text); a refused connection raises OSError."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with HTTP.open(req, timeout=timeout) as answer:
            return answer.status, answer.headers, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode(errors="replace")


def wait_for_probes(pods, binary):
    """Every pod passes startupProbe, then readinessProbe, then livenessProbe:
    an httpGet answered 200-399 within the probe's timeoutSeconds. Polled
    every half second (not at periodSeconds, to be quick); the wait is
    bounded by what the probe allows and PROBE_BUDGET_S."""
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        for pod in pods:
            probe = pod.container.get(kind)
            if probe is None:
                continue
            if "httpGet" not in probe:
                raise Failure(f"pod {pod.name}: {kind} is not an httpGet probe; not supported by this check")
            get = probe["httpGet"]
            url = pod.url(get["port"]) + get.get("path", "/")
            allowed = (probe.get("initialDelaySeconds", 0)
                       + probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))
            deadline = time.monotonic() + min(allowed, PROBE_BUDGET_S)
            last = "no answer"
            while True:
                if pod.exited():
                    pod.restart(binary)
                    deadline = time.monotonic() + min(allowed, PROBE_BUDGET_S)
                try:
                    status, _, text = request("GET", url, timeout=probe.get("timeoutSeconds", 1))
                    if 200 <= status < 400:
                        break
                    last = f"{status} {text[:200]}"
                except OSError as e:
                    last = str(e)
                if time.monotonic() > deadline:
                    raise Failure(f"pod {pod.name}: {kind} GET {get.get('path', '/')} did not pass in "
                                  f"{min(allowed, PROBE_BUDGET_S):.0f} s; last: {last}")
                time.sleep(0.5)
            log(f"pod {pod.name}: {kind} GET {get.get('path', '/')} passed")


def sign_in(console, password):
    base = console.url("http")
    status, headers, text = request("POST", f"{base}/api/v1/login", {"name": "admin", "password": password})
    if status != 200:
        raise Failure(f"pod {console.name}: admin cannot sign in with the Secret's admin-password: {status} {text}")
    return headers["set-cookie"].split(";")[0]


def workers_listed(console, cookie):
    status, _, text = request("GET", f"{console.url('http')}/api/v1/workers", headers={"cookie": cookie})
    if status != 200:
        raise Failure(f"pod {console.name}: GET /api/v1/workers: {status} {text}")
    return {w["id"]: w for w in json.loads(text)}


def check_console_api(consoles, workers, secret):
    """Each console lists every worker pod by name, up, with its slots; and
    /metrics takes the Secret's metrics token."""
    for console in consoles:
        cookie = sign_in(console, secret["admin-password"])
        deadline = time.monotonic() + 30
        while True:
            listed = workers_listed(console, cookie)
            missing = [w.name for w in workers if listed.get(w.name, {}).get("state") != "up"]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise Failure(f"pod {console.name}: GET /api/v1/workers does not list {missing} as up; "
                              f"it lists {listed}")
            time.sleep(0.5)
        for worker in workers:
            slots = worker.env.get("SLUICE_WORKER_SLOTS")
            if slots is not None and str(listed[worker.name]["slots"]) != slots:
                raise Failure(f"worker {worker.name} has {listed[worker.name]['slots']} slots, "
                              f"the manifest gives {slots}")
        log(f"pod {console.name}: admin signs in; /api/v1/workers lists {', '.join(w.name for w in workers)} as up")
        token = secret.get("metrics-token")
        if token is not None and "SLUICE_METRICS_TOKEN" in console.env:
            bearer = {"authorization": f"Bearer {token}"}
            status, _, text = request("GET", f"{console.url('http')}/metrics", headers=bearer)
            if status != 200:
                raise Failure(f"pod {console.name}: /metrics with the Secret's metrics-token: {status} {text[:200]}")
            log(f"pod {console.name}: /metrics answers to the Secret's metrics-token")


def terminate(pods):
    """SIGTERM to each container's process, as a kubelet deleting the pod
    (no preStop hooks), and each must exit with 0 within its grace period."""
    started = time.monotonic()
    for pod in pods:
        pod.process.send_signal(signal.SIGTERM)
    for pod in pods:
        try:
            code = pod.process.wait(timeout=max(0.0, started + pod.grace - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise Failure(f"pod {pod.name}: still running {pod.grace} s after SIGTERM "
                          "(terminationGracePeriodSeconds): the kubelet would SIGKILL it")
        if code != 0:
            raise Failure(f"pod {pod.name}: exited with {code} after SIGTERM")
        log(f"pod {pod.name}: exited cleanly {time.monotonic() - started:.1f} s after SIGTERM (grace {pod.grace} s)")


# --- The whole check -----------------------------------------------------------


def cluster_state(objects, database_url):
    """The Secret, ConfigMap and Service objects as the kubelet sees them. The
    example Secret's placeholders are replaced: both database URLs by this
    test's PostgreSQL database (keeping their parameters), the secret key by a fresh one when it is not
    64 hex digits. Every other value is used as written."""
    secrets_ = {}
    for name, secret in by_kind(objects, "Secret").items():
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        data.update(secret.get("stringData") or {})
        for key in ("database-url", "snapshots"):
            if key in data:
                # The example's parameters are kept (its TLS setting), but
                # `verify-full` becomes `require`: the test server's
                # certificate is Debian's self-signed one.
                query = data[key].partition("?")[2].replace("sslmode=verify-full", "sslmode=require")
                data[key] = database_url + ("&" if "?" in database_url else "?") + query if query else database_url
        if "secret.key" in data and not re.fullmatch(r"[0-9a-fA-F]{64}", data["secret.key"].strip()):
            data["secret.key"] = secrets.token_hex(32)
        secrets_[name] = data
    configmaps = {name: dict(c.get("data") or {}) for name, c in by_kind(objects, "ConfigMap").items()}
    image = image_config(REPO / "deploy" / "Dockerfile")
    return {"secrets": secrets_, "configmaps": configmaps, "services": by_kind(objects, "Service"), "image": image}


def run(args, root):
    objects = load_manifests(args.manifests)
    validate_schemas(objects)
    check_references(objects)
    cluster = cluster_state(objects, args.database_url)
    deployments = by_kind(objects, "Deployment")
    for name in ("sluice-console", "sluice-worker"):
        if name not in deployments:
            raise Failure(f"no Deployment {name} in {args.manifests}")
    pods = {}
    # Consoles first, then workers, each Deployment's replicas at once.
    for name in ("sluice-console", "sluice-worker"):
        deployment = deployments[name]
        pods[name] = []
        for replica in range(deployment["spec"].get("replicas", 1)):
            pod = Pod(deployment, replica, cluster, root)
            pods[name].append(pod)
            ALL_PODS.append(pod)
        for pod in pods[name]:
            pod.start(args.sluice)
        wait_for_probes(pods[name], args.sluice)
    consoles, workers = pods["sluice-console"], pods["sluice-worker"]
    for pod in ALL_PODS:
        if pod.exited():
            raise Failure(f"pod {pod.name}: the process exited with {pod.process.returncode} after its probes passed")
    check_console_api(consoles, workers, cluster["secrets"]["sluice"])
    terminate(workers)
    cookie = sign_in(consoles[0], cluster["secrets"]["sluice"]["admin-password"])
    listed = workers_listed(consoles[0], cookie)
    drained = [w.name for w in workers if listed.get(w.name, {}).get("state") != "stopped"]
    if drained:
        raise Failure(f"workers {drained} are not listed as stopped after SIGTERM: {listed}")
    log("the workers drained: listed as stopped")
    terminate(consoles)
    restarted = [f"pod {p.name} exited with {code}:\n{tail}" for p in ALL_PODS for code, tail in p.restarts]
    if restarted:
        raise Failure("everything else passed, but containers crashed while the deployment came up "
                      "(a cluster restarts them; `kubectl get pods` shows RESTARTS):\n" + "\n".join(restarted))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sluice", required=True, help="the sluice binary (the image's entrypoint)")
    parser.add_argument("--database-url", required=True, help="an empty PostgreSQL database for the pods")
    parser.add_argument("--manifests", type=Path, default=REPO / "deploy" / "kubernetes")
    args = parser.parse_args()
    args.sluice = str(Path(args.sluice).resolve())
    # A SIGTERM or SIGINT to this script still cleans up (the `finally`).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: sys.exit(128 + number))
    root = Path(tempfile.mkdtemp(prefix="sluice-kubernetes-check-"))
    ok = False
    try:
        run(args, root)
        ok = True
    except Failure as e:
        print(f"kubernetes-check: FAILED: {e}", file=sys.stderr)
    except Exception:  # a bug of this script, or an answer it did not expect
        print(f"kubernetes-check: FAILED:\n{traceback.format_exc()}", file=sys.stderr)
    finally:
        for pod in ALL_PODS:
            if pod.process is not None and pod.process.poll() is None:
                os.killpg(pod.process.pid, signal.SIGKILL)
                pod.process.wait()
        logs = [f"--- log of pod {pod.name} (exit {pod.process and pod.process.returncode}):\n{pod.tail()}"
                for pod in ALL_PODS]
        # Secret volumes are read-only directories.
        for directory, _, _ in os.walk(root):
            os.chmod(directory, 0o755)
        shutil.rmtree(root, ignore_errors=True)
        if not ok:
            print("\n".join(logs), file=sys.stderr)
    if ok:
        log("passed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
