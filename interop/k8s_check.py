#!/usr/bin/env python3
"""k8s_check.py REPO: deploy/k8s/*.yaml parse as YAML (python3-yaml, Debian's) and hold what a C-node Deployment
needs; the Dockerfile is multi-stage, Debian 12 slim at run time, non-root, cnode as entrypoint. Prints `ok ...` or
`FAIL ...` per check; exits 1 when one failed. Run by interop/ops_suite.escript."""
import glob
import os
import re
import sys

import yaml

failed = 0


def check(cond, what):
    global failed
    print(("ok " if cond else "FAIL ") + what)
    failed += 0 if cond else 1


def env_map(container):
    return {e["name"]: e for e in container.get("env", [])}


def main(repo):
    docs = []
    files = sorted(glob.glob(os.path.join(repo, "deploy/k8s/*.yaml")))
    check(len(files) >= 3, "deploy/k8s holds the manifests (%d files)" % len(files))
    for f in files:
        try:
            with open(f) as fh:
                loaded = [d for d in yaml.safe_load_all(fh) if d is not None]
            docs += loaded
            check(all("apiVersion" in d and "kind" in d for d in loaded), "%s parses as YAML" % os.path.basename(f))
        except yaml.YAMLError as e:
            check(False, "%s parses as YAML: %s" % (os.path.basename(f), e))
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    svc = (by_kind.get("Service") or [{}])[0].get("spec", {})
    check(svc.get("clusterIP") == "None", "the Service is headless (clusterIP: None)")
    check(svc.get("publishNotReadyAddresses") is True, "the Service publishes not-ready pods (found before ready)")
    check({p.get("port") for p in svc.get("ports", [])} >= {4369}, "the Service has EPMD's port")
    secrets = {s["metadata"]["name"] for s in by_kind.get("Secret", [])}
    dep = (by_kind.get("Deployment") or [{}])[0]
    pod = dep.get("spec", {}).get("template", {}).get("spec", {})
    c = (pod.get("containers") or [{}])[0]
    env = env_map(c)
    check(env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP",
          "POD_IP comes from the downward API (status.podIP)")
    names = list(env)
    check(env.get("CNODE_NAME", {}).get("value") == "cnode@$(POD_IP)"
          and names.index("POD_IP") < names.index("CNODE_NAME"), "CNODE_NAME is cnode@$(POD_IP), after POD_IP")
    ref = env.get("CNODE_COOKIE", {}).get("valueFrom", {}).get("secretKeyRef", {})
    check(ref.get("name") in secrets and ref.get("key"), "CNODE_COOKIE comes from the Secret %s" % ref.get("name"))
    check(all(re.fullmatch(r"[A-Z][A-Z0-9_]*", n) for n in names), "variable names are well formed")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    http = int(env.get("CNODE_HTTP_PORT", {}).get("value", "0"))
    check(http and ports.get("http") == http, "the http port is CNODE_HTTP_PORT (%s)" % http)
    live = c.get("livenessProbe", {}).get("httpGet", {})
    ready = c.get("readinessProbe", {}).get("httpGet", {})
    check(live.get("path") == "/healthz" and live.get("port") in ("http", http), "liveness probe on /healthz")
    check(ready.get("path") == "/readyz" and ready.get("port") in ("http", http), "readiness probe on /readyz")
    drain = int(env.get("CNODE_DRAIN_DELAY", {}).get("value", "5"))
    stop = int(env.get("CNODE_SHUTDOWN_TIMEOUT", {}).get("value", "20"))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace > drain + stop, "terminationGracePeriodSeconds %s > drain %s + shutdown %s" % (grace, drain, stop))
    sc = pod.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True and sc.get("runAsUser", 0) != 0, "the pod runs as a non-root user")
    sel = dep.get("spec", {}).get("selector", {}).get("matchLabels", {})
    check(sel and all(svc.get("selector", {}).get(k) == v for k, v in sel.items()), "the Service selects the pods")

    with open(os.path.join(repo, "Dockerfile")) as fh:
        lines = [l.strip() for l in fh if l.strip() and not l.lstrip().startswith("#")]
    froms = [l.split()[1] for l in lines if l.upper().startswith("FROM ")]
    check(len(froms) >= 2, "the Dockerfile is multi-stage (%d stages)" % len(froms))
    check(froms and froms[-1] in ("debian:12-slim", "debian:bookworm-slim"), "it runs on Debian 12 slim")
    users = [l.split()[1] for l in lines if l.upper().startswith("USER ")]
    check(users and users[-1].split(":")[0] not in ("root", "0"), "it runs as a non-root user (%s)" %
          (users[-1] if users else None))
    entry = [l for l in lines if l.upper().startswith("ENTRYPOINT ")]
    check(entry and "cnode" in entry[-1] and "cnode-epmd" not in entry[-1], "cnode is the entrypoint")
    print("k8s_check: %d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
