#!/usr/bin/env bash
# Regenerates the Strimzi JSON Schemas in ../kafka.strimzi.io/ from Strimzi's own API model,
# with Strimzi's own CRD generator (both from Maven Central), the way the operator's CRDs are built.
# Run from anywhere: bash deploy/k8s/schemas/strimzi/generate.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mvn -q -f "$here/pom.xml" dependency:build-classpath -Dmdep.outputFile="$work/cp.txt"
java -cp "$(cat "$work/cp.txt")" io.strimzi.crdgenerator.CrdGenerator \
  --target-kube 1.16+ --crd-api-version v1 --api-versions v1beta2,v1 --storage-version v1beta2 --yaml \
  io.strimzi.api.kafka.model.kafka.Kafka="$work/Kafka.yaml" \
  io.strimzi.api.kafka.model.nodepool.KafkaNodePool="$work/KafkaNodePool.yaml" \
  io.strimzi.api.kafka.model.topic.KafkaTopic="$work/KafkaTopic.yaml" \
  io.strimzi.api.kafka.model.user.KafkaUser="$work/KafkaUser.yaml" 2>/dev/null

cd "$here/../../../.."
uv run python deploy/k8s/schemas/crd_to_jsonschema.py --version v1 \
  --out deploy/k8s/schemas "$work"/Kafka.yaml "$work"/KafkaNodePool.yaml \
  "$work"/KafkaTopic.yaml "$work"/KafkaUser.yaml
