// Package deploy holds txflow's deployment files — deploy/Dockerfile, the Kubernetes manifests
// in deploy/k8s and, at the repository root, docker-compose.yml — and the tests that check them
// against what the code reads (internal/config) and against each other. It has no code.
package deploy
