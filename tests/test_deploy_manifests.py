"""Offline checks of deploy/: both kustomize overlays render and validate, and they keep the
promises a reviewer looks for (probes, non-root, network isolation, one KafkaTopic per topic,
least-privilege Kafka ACLs); the dashboard and the alert rules parse and use Thrive metrics.

Needs `kubectl` (for `kubectl kustomize`); `promtool` is optional (PromQL syntax check).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from thrive_shared.contracts import topics

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
OBSERVABILITY = ROOT / "deploy" / "observability"
OVERLAYS = ("dev", "prod")
SERVICES = ("recognition", "leaderboard", "notifier", "gateway")
# Services owning a schema (thrive_shared.platform.WITH_DATABASE); the gateway owns nothing durable.
WITH_DATABASE = ("recognition", "leaderboard", "notifier")
# The oldest Kubernetes deploy/README.md supports, and a recent one.
KUBERNETES_VERSIONS = ("1.30.0", "1.35.0")
INGRESS_NAMESPACE = "ingress-nginx"
CANONICAL_TOPICS = {
    topics.HELP_REQUESTED,
    topics.ASK_STATUS,
    topics.HELP_OFFERED,
    topics.HELP_RECEIVED,
    topics.MILESTONE_REACHED,
}

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed (.ci/run installs it): cannot render"
)


def _load_module(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


metric_names = _load_module("thrive_deploy_metric_names", OBSERVABILITY / "metric_names.py")
build_dashboard = _load_module(
    "thrive_deploy_build_dashboard", OBSERVABILITY / "grafana" / "build_dashboard.py"
)


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    """The overlay's resources as kubectl would apply them."""
    assert KUBECTL
    done = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def by_name(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in of_kind(docs, kind)}


def custom_schema(doc: dict[str, Any]) -> Path:
    return SCHEMAS / doc["apiVersion"] / f"{doc['kind']}.json"


def is_custom(doc: dict[str, Any]) -> bool:
    group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
    return "." in group and not group.endswith(".k8s.io")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels + matchExpressions) matches these labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


# --- rendering and schema validation -------------------------------------------------------


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_a_complete_install(overlay: str) -> None:
    docs = render(overlay)
    kinds = {doc["kind"] for doc in docs}
    assert {
        "Namespace",
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "Job",
        "ConfigMap",
        "Ingress",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "Cluster",
        "Database",
        "ServiceMonitor",
        "PrometheusRule",
    } <= kinds
    namespaces = {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"}
    (namespace,) = [doc["metadata"]["name"] for doc in of_kind(docs, "Namespace")]
    assert namespaces == {namespace}, "every resource lands in the overlay's namespace"
    for service in SERVICES:
        name = f"thrive-{service}"
        for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"):
            assert name in by_name(docs, kind), f"{overlay}: {kind} {name} missing"
        assert name in by_name(docs, "HorizontalPodAutoscaler")
        assert name in by_name(docs, "ServiceMonitor")
    migrations = {job.removesuffix("-migrate") for job in by_name(docs, "Job")}
    assert migrations == {f"thrive-{service}" for service in WITH_DATABASE}


@needs_kubectl
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_resources_pass_strict_kubernetes_schemas(overlay: str, version: str) -> None:
    errors = []
    checked = 0
    for doc in render(overlay):
        if is_custom(doc):
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")
    assert not errors, "\n".join(errors)
    assert checked > 40


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_match_their_crd_schemas(overlay: str) -> None:
    errors = []
    custom = [doc for doc in render(overlay) if is_custom(doc)]
    assert custom
    for doc in custom:
        path = custom_schema(doc)
        assert path.exists(), f"no schema for {doc['apiVersion']} {doc['kind']} ({path})"
        validator = jsonschema.Draft202012Validator(json.loads(path.read_text()))
        for error in validator.iter_errors(doc):
            where = "/".join(str(p) for p in error.absolute_path)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']} {where}: {error.message}")
    assert not errors, "\n".join(errors)


def test_crd_schemas_reject_unknown_and_missing_fields() -> None:
    topic_schema = json.loads((SCHEMAS / "kafka.strimzi.io/v1/KafkaTopic.json").read_text())
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "t", "labels": {"strimzi.io/cluster": "c"}},
        "spec": {"partitions": 3, "replicas": 1},
    }
    jsonschema.validate(topic, topic_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**topic, "spec": {"partitons": 3}}, topic_schema)
    user_schema = json.loads((SCHEMAS / "kafka.strimzi.io/v1/KafkaUser.json").read_text())
    # v1 dropped the singular `operation` of v1beta2: a stale manifest must fail here.
    stale_acl = {"resource": {"type": "topic", "name": "t"}, "operation": "Read"}
    user = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": {"name": "u"},
        "spec": {"authorization": {"type": "simple", "acls": [stale_acl]}},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(user, user_schema)
    db_schema = json.loads((SCHEMAS / "postgresql.cnpg.io/v1/Database.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {
                "apiVersion": "postgresql.cnpg.io/v1",
                "kind": "Database",
                "metadata": {"name": "d"},
                "spec": {"name": "d", "cluster": {"name": "pg"}},  # no owner
            },
            db_schema,
        )


# --- what a reviewer checks -----------------------------------------------------------------


def _pod_specs(docs: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"])
        for doc in docs
        if doc["kind"] in {"Deployment", "Job"}
    ]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_probe_health_and_readiness(overlay: str) -> None:
    for name, deployment in by_name(render(overlay), "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready", name
        service = name.removeprefix("thrive-")
        assert container["command"] == [name] and container["args"] == ["serve"]
        assert service in SERVICES


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_locked_down(overlay: str) -> None:
    for name, pod in _pod_specs(render(overlay)):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        mounts: dict[str, str] = {}
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in ctx["capabilities"], name
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), name
            assert "memory" in resources["limits"], name
            mounts.update({m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])})
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be a writable emptyDir"


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values_are_committed(overlay: str) -> None:
    docs = render(overlay)
    assert not of_kind(docs, "Secret")
    for name, pod in _pod_specs(docs):
        for container in pod["containers"]:
            for env in container.get("env", []):
                if re.search(r"PASSWORD|SECRET|TOKEN", env["name"]):
                    assert "valueFrom" in env, f"{name}: {env['name']} has a literal value"
    for config in of_kind(docs, "ConfigMap"):
        for key in config.get("data", {}):
            assert not re.search(r"PASSWORD|SECRET|TOKEN", key), config["metadata"]["name"]


def _pods(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, str]]:
    """Pod labels of every workload, by workload name."""
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"]
        for doc in docs
        if doc["kind"] in {"Deployment", "Job"}
    }


def _admits_ingress_controller(rule: dict[str, Any]) -> bool:
    peers = rule.get("from")
    if not peers:
        return True  # an empty `from` admits every source
    for peer in peers:
        if "ipBlock" in peer:
            return True
        ns = peer.get("namespaceSelector")
        if ns is not None and selects(ns, {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}):
            return True
    return False


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_is_reachable_from_the_ingress_controller(overlay: str) -> None:
    docs = render(overlay)
    pods = _pods(docs)
    policies = of_kind(docs, "NetworkPolicy")
    reachable = set()
    for policy in policies:
        spec = policy["spec"]
        if "Ingress" not in spec["policyTypes"]:
            continue
        if any(_admits_ingress_controller(rule) for rule in spec.get("ingress", [])):
            reachable |= {n for n, labels in pods.items() if selects(spec["podSelector"], labels)}
    assert reachable == {"thrive-gateway"}
    (ingress,) = of_kind(docs, "Ingress")
    backends = {
        path["backend"]["service"]["name"]
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"thrive-gateway"}
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert not any(p.startswith(("/internal", "/metrics")) or p == "/" for p in paths)
    assert (
        int(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"])
        >= 600
    )


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_thrive_pod_is_default_denied(overlay: str) -> None:
    docs = render(overlay)
    deny = [
        p
        for p in of_kind(docs, "NetworkPolicy")
        if set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "a default-deny policy exists"
    for name, labels in _pods(docs).items():
        assert any(selects(p["spec"]["podSelector"], labels) for p in deny), name
        # Kafka and Postgres pods carry none of these labels, so their operators stay in charge.
        assert labels.get("app.kubernetes.io/part-of") == "thrive"


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_notifier_and_gateway_leave_the_cluster(overlay: str) -> None:
    docs = render(overlay)
    pods = _pods(docs)
    outside: dict[str, set[int]] = {}
    for policy in of_kind(docs, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            if not any("ipBlock" in peer for peer in rule.get("to", [])):
                continue
            for peer in rule["to"]:
                assert "169.254.0.0/16" in peer["ipBlock"].get("except", []), "metadata address"
            for name, labels in pods.items():
                if selects(policy["spec"]["podSelector"], labels):
                    outside.setdefault(name, set()).update(p["port"] for p in rule["ports"])
    assert outside == {"thrive-notifier": {443, 587}, "thrive-gateway": {443}}


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_reaches_the_internal_apis_and_nobody_else_does(overlay: str) -> None:
    docs = render(overlay)
    pods = _pods(docs)
    for service in ("recognition", "leaderboard", "notifier"):
        labels = pods[f"thrive-{service}"]
        sources = set()
        for policy in of_kind(docs, "NetworkPolicy"):
            if not selects(policy["spec"]["podSelector"], labels):
                continue
            for rule in policy["spec"].get("ingress", []):
                for peer in rule.get("from", []):
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        sources |= {n for n, lb in pods.items() if selects(peer["podSelector"], lb)}
        assert sources == {"thrive-gateway"}, service


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_contract_topic_has_a_kafka_topic(overlay: str) -> None:
    docs = render(overlay)
    declared = {
        t["spec"].get("topicName", t["metadata"]["name"]): t for t in of_kind(docs, "KafkaTopic")
    }
    assert set(declared) == set(topics.ALL_TOPICS) | set(topics.RETIRING_TOPICS)
    directory = declared[topics.DIRECTORY_PERSON]["spec"]["config"]
    assert directory["cleanup.policy"] == "compact"
    dlq_days = declared[topics.DLQ]["spec"]["config"]["retention.ms"] / 86_400_000
    others = [
        t["spec"]["config"]["retention.ms"] / 86_400_000
        for name, t in declared.items()
        if name not in {topics.DLQ, topics.DIRECTORY_PERSON}
    ]
    assert dlq_days >= 30 and dlq_days >= max(others)
    replicas = {t["spec"]["replicas"] for t in declared.values()}
    assert replicas == ({1} if overlay == "dev" else {3})


def _acls(user: dict[str, Any]) -> list[tuple[str, str, str, set[str]]]:
    return [
        (
            acl["resource"]["type"],
            acl["resource"]["name"],
            acl["resource"].get("patternType", "literal"),
            set(acl["operations"]),
        )
        for acl in user["spec"]["authorization"]["acls"]
    ]


@needs_kubectl
def test_kafka_acls_keep_the_canonical_topics_trusted() -> None:
    users = by_name(render("prod"), "KafkaUser")
    writers: dict[str, set[str]] = {}
    for name, user in users.items():
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        for kind, resource, pattern, ops in _acls(user):
            assert resource != "*" and ops <= {"Read", "Write", "Describe"}, name
            if kind == "topic":
                assert pattern == "literal", f"{name}: topic ACLs name exact topics"
                known = (*topics.ALL_TOPICS, *topics.RETIRING_TOPICS)
                assert resource in known, f"{name}: unknown topic {resource}"
                if "Write" in ops:
                    writers.setdefault(resource, set()).add(name)
    for topic in CANONICAL_TOPICS:
        assert writers[topic] == {"thrive-recognition"}, topic
    assert writers[topics.INGEST_HELP] == {"thrive-ingest-producer"}
    assert writers[topics.LEADERBOARD_CHANGED] == {"thrive-leaderboard"}
    assert writers[topics.CELEBRATION_DELIVERED_V2] == {"thrive-notifier"}
    # One CelebrationDelivered per celebration: the notifier writes it, the gateway alone reads
    # it. v1 (one record per recipient) is retiring: its old writer may still relay what an
    # older pod left in the outbox during the upgrade, and nobody reads it.
    assert writers[topics.CELEBRATION_DELIVERED] == {"thrive-notifier"}
    readers = {
        name
        for name, user in users.items()
        for kind, resource, _, ops in _acls(user)
        if kind == "topic" and resource == topics.CELEBRATION_DELIVERED_V2 and "Read" in ops
    }
    assert readers == {"thrive-gateway"}
    assert not any(
        resource in topics.RETIRING_TOPICS and "Read" in ops
        for user in users.values()
        for _, resource, _, ops in _acls(user)
    )
    external = {"thrive-ingest-producer", "hr-directory-producer"}
    for name in external:
        assert {r for k, r, _, ops in _acls(users[name]) if "Write" in ops} <= {
            topics.INGEST_HELP,
            topics.DIRECTORY_PERSON,
        }
    for service in SERVICES:
        groups = [(r, p) for k, r, p, _ in _acls(users[f"thrive-{service}"]) if k == "group"]
        # thrive_shared.kafka names groups thrive-<service>.<consumer>.
        assert groups == [(f"thrive-{service}", "prefix")], service


@needs_kubectl
def test_each_service_has_its_own_database_and_role() -> None:
    docs = render("prod")
    (cluster,) = of_kind(docs, "Cluster")
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    databases = {d["spec"]["name"]: d["spec"] for d in of_kind(docs, "Database")}
    assert set(roles) == set(databases) == set(WITH_DATABASE)
    for service in WITH_DATABASE:
        assert databases[service]["owner"] == service
        assert roles[service]["passwordSecret"]["name"] == f"thrive-{service}-db"
        deployment = by_name(docs, "Deployment")[f"thrive-{service}"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["DATABASE_URL"]["value"].endswith(f"/{service}?sslmode=require")
        assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"thrive-{service}-db"
        assert (
            env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"thrive-{service}"
        )


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_has_no_database_and_no_route_to_postgres(overlay: str) -> None:
    """The gateway owns nothing durable (DESIGN.md): no credentials, no migration, no egress."""
    docs = render(overlay)
    gateway = by_name(docs, "Deployment")["thrive-gateway"]
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    env = {e["name"] for e in container.get("env", [])}
    assert not env & {"DATABASE_URL", "DB_USER", "DB_PASSWORD"}
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    for policy in of_kind(docs, "NetworkPolicy"):
        if not selects(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get("egress", []):
            ports = {p.get("port") for p in rule.get("ports", [])}
            assert 5432 not in ports, policy["metadata"]["name"]


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_leaderboard_runs_as_one_pod(overlay: str) -> None:
    """Its boards live in memory, updated only from its own partitions: two pods in the group,
    even briefly during a rollout, would each serve boards missing the other's commits."""
    docs = render(overlay)
    hpa = by_name(docs, "HorizontalPodAutoscaler")["thrive-leaderboard"]
    assert hpa["spec"]["minReplicas"] == hpa["spec"]["maxReplicas"] == 1
    deployment = by_name(docs, "Deployment")["thrive-leaderboard"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pdb = by_name(docs, "PodDisruptionBudget")["thrive-leaderboard"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]


@needs_kubectl
def test_overlays_differ_where_they_should() -> None:
    dev, prod = render("dev"), render("prod")
    for name, hpa in by_name(dev, "HorizontalPodAutoscaler").items():
        assert hpa["spec"]["minReplicas"] == hpa["spec"]["maxReplicas"] == 1, name
    for name, hpa in by_name(prod, "HorizontalPodAutoscaler").items():
        if name == "thrive-leaderboard":
            continue  # one pod: test_the_leaderboard_runs_as_one_pod
        assert hpa["spec"]["minReplicas"] == 3, name
        if name != "thrive-gateway":
            # More consumers than partitions would sit idle in the group.
            assert hpa["spec"]["maxReplicas"] == 12, name
    for name, pdb in by_name(prod, "PodDisruptionBudget").items():
        if name != "thrive-leaderboard":
            assert pdb["spec"]["minAvailable"] == 2, name
    (dev_pool,), (prod_pool,) = of_kind(dev, "KafkaNodePool"), of_kind(prod, "KafkaNodePool")
    assert dev_pool["spec"]["replicas"] == 1 and prod_pool["spec"]["replicas"] == 3
    (prod_kafka,) = of_kind(prod, "Kafka")
    assert prod_kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    assert of_kind(prod, "Cluster")[0]["spec"]["instances"] == 3
    dev_gateway = by_name(dev, "ConfigMap")
    gateway_config = next(v for k, v in dev_gateway.items() if k.startswith("thrive-gateway-"))
    assert gateway_config["data"]["THRIVE_GATEWAY_DEV_ISSUER"] == "true"
    prod_gateway = next(
        v for k, v in by_name(prod, "ConfigMap").items() if k.startswith("thrive-gateway-")
    )
    assert prod_gateway["data"]["THRIVE_GATEWAY_DEV_ISSUER"] == "false"
    assert prod_gateway["data"]["THRIVE_GATEWAY_PRODUCTION"] == "true"


# --- dashboards and alerts ------------------------------------------------------------------


def test_dashboard_is_the_generators_output() -> None:
    committed = (OBSERVABILITY / "grafana" / "thrive-dashboard.json").read_text()
    assert committed == build_dashboard.render(), (
        "run deploy/observability/grafana/build_dashboard.py"
    )


def test_dashboard_has_an_overview_and_a_row_per_service_with_queries() -> None:
    dashboard = json.loads((OBSERVABILITY / "grafana" / "thrive-dashboard.json").read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Pipeline overview", "Recognition", "Leaderboard", "Notifier", "Gateway"]
    graphs = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert graphs
    for panel in graphs:
        assert panel["datasource"]["type"] == "prometheus", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"], panel["title"]
            assert metric_names.metric_names(target["expr"]), panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_alert_rules_cover_what_pages_an_operator() -> None:
    alerts = dict(metric_names.rule_exprs())
    needed = {
        "ThriveConsumerLagGrowing": "thrive_consumer_lag",
        "ThriveDeadLetters": "thrive_dlq_events_total",
        "ThriveOutboxStale": "thrive_outbox_oldest_age_seconds",
        "ThriveDeliveryFailureRate": "thrive_deliveries_total",
        "ThriveHttp5xxRate": "thrive_http_requests_total",
    }
    for alert, metric in needed.items():
        assert metric in metric_names.metric_names(alerts[alert]), alert
    fast = alerts["ThriveErrorBudgetBurnFast"]
    # Multi-window: a long and a short window at each burn rate.
    assert {"rate1h", "rate5m", "rate6h", "rate30m"} <= set(re.findall(r"rate\d+[mhd]", fast))


# The metric contract from the team brief: name -> label names (histograms add `le`).
BRIEF_METRICS: dict[str, set[str]] = {
    "thrive_events_consumed_total": {"service", "topic", "type", "outcome"},
    "thrive_events_produced_total": {"service", "topic", "type"},
    "thrive_handler_duration_seconds": {"service", "topic"},
    "thrive_consumer_lag": {"service", "topic", "partition"},
    "thrive_outbox_backlog": {"service"},
    "thrive_outbox_oldest_age_seconds": {"service"},
    "thrive_dlq_events_total": {"service", "topic", "error"},
    "thrive_db_pool_connections": {"service", "state"},
    "thrive_http_requests_total": {"service", "route", "method", "status"},
    "thrive_http_request_duration_seconds": {"service", "route"},
    "thrive_deliveries_total": {"channel", "outcome"},
    "thrive_delivery_retries_total": {"channel"},
    "thrive_deliveries_parked": {"channel"},
    "thrive_digest_size": set(),
    "thrive_budget_deferrals_total": {"reason"},
    "thrive_graphql_operations_total": {"operation", "outcome"},
    "thrive_graphql_operation_duration_seconds": {"operation"},
    "thrive_graphql_resolver_duration_seconds": {"field"},
    "thrive_websocket_connections": set(),
    "thrive_leaderboard_events_applied_total": set(),
    "thrive_leaderboard_query_duration_seconds": {"query"},
    "thrive_recognition_milestones_reached_total": {"rule_id"},
}
# Labels Prometheus adds when it scrapes, and the histogram bucket label.
SCRAPE_LABELS = {"le", "instance", "job", "namespace", "pod"}


def _all_exprs() -> list[tuple[str, str]]:
    return [*metric_names.dashboard_exprs(), *metric_names.rule_exprs()]


def test_dashboard_and_rules_use_only_the_contracted_metrics() -> None:
    used = metric_names.referenced_metrics()
    assert set(used) <= set(BRIEF_METRICS), set(used) - set(BRIEF_METRICS)
    # Everything the brief promises is on the dashboard or in a rule.
    assert set(used) == set(BRIEF_METRICS)


def test_dashboard_and_rules_use_only_the_contracted_labels() -> None:
    problems = []
    for where, expr in _all_exprs():
        names = metric_names.metric_names(expr)
        for raw, selector in re.findall(r"(thrive_[a-z_]+)\{([^}]*)\}", expr):
            (name,) = metric_names.metric_names(raw)
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", selector):
                if label not in BRIEF_METRICS[name] | SCRAPE_LABELS:
                    problems.append(f"{where}: {name} has no label {label}")
        allowed = set().union(*(BRIEF_METRICS[n] for n in names)) | SCRAPE_LABELS
        for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            for label in filter(None, (g.strip() for g in grouping.split(","))):
                if label not in allowed:
                    problems.append(f"{where}: groups by unknown label {label}")
    assert not problems, "\n".join(problems)


def test_metric_name_extraction() -> None:
    assert metric_names.metric_names(
        "histogram_quantile(0.9, sum by (le) (rate(thrive_digest_size_bucket[5m]))) "
        "/ thrive:gateway_http_error_ratio:rate5m + thrive_http_requests_total"
    ) == {"thrive_digest_size", "thrive_http_requests_total"}


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) not installed")
def test_promql_parses_with_promtool(tmp_path: Path) -> None:
    document = yaml.safe_load((OBSERVABILITY / "prometheus" / "thrive-alerts.yaml").read_text())
    groups = document["spec"]["groups"]
    # Dashboard queries, as recording rules, so promtool parses them too.
    panels = [
        {"record": f"dashboard:panel_{i}:check", "expr": expr.replace("$__rate_interval", "5m")}
        for i, (_, expr) in enumerate(metric_names.dashboard_exprs())
    ]
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": [*groups, {"name": "dashboard", "rules": panels}]}))
    assert PROMTOOL
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_kubectl
def test_upgrade_selector_applies_migrations_with_their_config() -> None:
    """deploy/README.md applies `component in (config,migrate)` first: that must be enough."""
    docs = render("prod")
    first = {
        (doc["kind"], doc["metadata"]["name"])
        for doc in docs
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        in {"config", "migrate"}
    }
    jobs = of_kind(docs, "Job")
    assert {("Job", job["metadata"]["name"]) for job in jobs} <= first
    for job in jobs:
        for container in job["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in first


@needs_kubectl
def test_readme_partition_table_matches_the_topics() -> None:
    readme = (ROOT / "deploy" / "README.md").read_text()
    table = dict(re.findall(r"^\| `([a-z.0-9]+)` \| (\d+) \|", readme, flags=re.MULTILINE))
    declared = {
        t["spec"]["topicName"]: str(t["spec"]["partitions"])
        for t in of_kind(render("prod"), "KafkaTopic")
    }
    assert table == declared
