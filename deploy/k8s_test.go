package deploy

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/txflow/txflow/internal/health"
)

const k8sDir = "k8s"

// kustomization is the part of kustomization.yaml the tests read.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images"`
}

// manifests is every object of the kustomization, decoded strictly into its API type: an
// unknown or misspelt field fails the test, as it would fail kubectl apply.
type manifests struct {
	kustomization kustomization
	namespaces    []*corev1.Namespace
	configMaps    []*corev1.ConfigMap
	pvcs          []*corev1.PersistentVolumeClaim
	deployments   []*appsv1.Deployment
	hpas          []*autoscalingv2.HorizontalPodAutoscaler
	jobs          []*batchv1.Job
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decodeFile decodes every YAML document of path into its API type, by kind.
func decodeFile(t *testing.T, path string, each func(kind string, doc []byte)) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, doc := range docSeparator.Split(string(raw), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var tm metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal([]byte(doc), &tm), path)
		require.NotEmpty(t, tm.Kind, "%s: a document without kind", path)
		each(tm.Kind, []byte(doc))
	}
}

func strict[T any](t *testing.T, path string, doc []byte) *T {
	t.Helper()
	v := new(T)
	require.NoError(t, yaml.UnmarshalStrict(doc, v), path)
	return v
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	var m manifests
	kpath := filepath.Join(k8sDir, "kustomization.yaml")
	raw, err := os.ReadFile(kpath)
	require.NoError(t, err)
	require.NoError(t, yaml.UnmarshalStrict(raw, &m.kustomization), kpath)
	require.NotEmpty(t, m.kustomization.Resources)
	for _, res := range m.kustomization.Resources {
		path := filepath.Join(k8sDir, res)
		decodeFile(t, path, func(kind string, doc []byte) {
			switch kind {
			case "Namespace":
				m.namespaces = append(m.namespaces, strict[corev1.Namespace](t, path, doc))
			case "ConfigMap":
				m.configMaps = append(m.configMaps, strict[corev1.ConfigMap](t, path, doc))
			case "PersistentVolumeClaim":
				m.pvcs = append(m.pvcs, strict[corev1.PersistentVolumeClaim](t, path, doc))
			case "Deployment":
				m.deployments = append(m.deployments, strict[appsv1.Deployment](t, path, doc))
			case "HorizontalPodAutoscaler":
				m.hpas = append(m.hpas, strict[autoscalingv2.HorizontalPodAutoscaler](t, path, doc))
			case "Job":
				m.jobs = append(m.jobs, strict[batchv1.Job](t, path, doc))
			default:
				t.Errorf("%s: unexpected kind %s", path, kind)
			}
		})
	}
	require.Len(t, m.namespaces, 1)
	require.Len(t, m.configMaps, 1)
	require.Len(t, m.pvcs, 1)
	require.Len(t, m.deployments, 1)
	require.Len(t, m.hpas, 1)
	require.Len(t, m.jobs, 1)
	return m
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	m := loadManifests(t)
	k := m.kustomization
	assert.Equal(t, "kustomize.config.k8s.io/v1beta1", k.APIVersion)
	assert.Equal(t, "Kustomization", k.Kind)
	assert.Equal(t, m.namespaces[0].Name, k.Namespace)
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	require.NoError(t, err)
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			assert.Contains(t, k.Resources, base, "%s is not in the kustomization", base)
		}
	}
	require.NotEmpty(t, k.Images)
	for _, img := range k.Images {
		assert.False(t, img.Digest == "" && img.NewTag == "", "images: %s has no tag or digest", img.Name)
		if img.Digest == "" {
			assertPinned(t, "kustomization images", img.Name+":"+img.NewTag)
		}
	}
}

func TestK8sConfigMap(t *testing.T) {
	m := loadManifests(t)
	known := knownVariables(t)
	cm := m.configMaps[0]
	for k := range cm.Data {
		switch {
		case strings.HasPrefix(k, "TXFLOW_"):
			assert.Contains(t, known, k, "the ConfigMap sets %s, which the code does not read", k)
		case strings.HasPrefix(k, "TEMPORAL_"):
			assert.NotEqual(t, "TEMPORAL_API_KEY", k, "the API key belongs in the Secret")
		default:
			t.Errorf("ConfigMap key %s: neither TXFLOW_* nor TEMPORAL_* (DATABASE_URL belongs in the Secret)", k)
		}
	}
	_, _, err := net.SplitHostPort(cm.Data["TEMPORAL_ADDRESS"])
	assert.NoError(t, err, "TEMPORAL_ADDRESS is host:port")
	assert.NotEmpty(t, cm.Data["TEMPORAL_NAMESPACE"])
	assert.Equal(t, imageEnv(t)["TXFLOW_INPUT_DIR"], cm.Data["TXFLOW_INPUT_DIR"])
	assert.Equal(t, imageEnv(t)["TXFLOW_OUTPUT_DIR"], cm.Data["TXFLOW_OUTPUT_DIR"])
	assert.NotEmpty(t, cm.Data[httpAddrVariable])
}

func TestK8sVolumeIsShared(t *testing.T) {
	m := loadManifests(t)
	pvc := m.pvcs[0]
	assert.Equal(t, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}, pvc.Spec.AccessModes,
		"every worker and the starter mount the same input and output roots")
	assert.False(t, pvc.Spec.Resources.Requests.Storage().IsZero())
}

func TestK8sWorkerDeployment(t *testing.T) {
	m := loadManifests(t)
	cm := m.configMaps[0]
	d := m.deployments[0]
	assert.Nil(t, d.Spec.Replicas, "the HorizontalPodAutoscaler owns the replica count")
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	require.NoError(t, err)
	assert.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "the selector does not match the pod labels")

	pod := d.Spec.Template.Spec
	require.NotNil(t, pod.TerminationGracePeriodSeconds)
	assert.GreaterOrEqual(t, *pod.TerminationGracePeriodSeconds, int64(40), "the worker drains for 30 s")
	assertPodSecurity(t, "worker", pod)
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	assertPinned(t, "worker", c.Image)
	assertEnv(t, "worker", c, cm, m)
	assertSecretEnv(t, c, "DATABASE_URL", false)
	assertSecretEnv(t, c, "TEMPORAL_API_KEY", true)

	// Probes on the port of TXFLOW_HTTP_ADDR.
	_, port, err := net.SplitHostPort(cm.Data[httpAddrVariable])
	require.NoError(t, err)
	probePort := func(p *corev1.Probe, name string) string {
		require.NotNil(t, p, "%s probe", name)
		require.NotNil(t, p.HTTPGet, "%s probe is not an HTTP GET", name)
		return resolvePort(t, c, p.HTTPGet.Port)
	}
	assert.Equal(t, port, probePort(c.LivenessProbe, "liveness"))
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, port, probePort(c.ReadinessProbe, "readiness"))
	assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	if c.StartupProbe != nil {
		assert.Equal(t, port, probePort(c.StartupProbe, "startup"))
		assert.Equal(t, "/healthz", c.StartupProbe.HTTPGet.Path)
	}
	assert.Greater(t, time.Duration(c.ReadinessProbe.TimeoutSeconds)*time.Second, health.Timeout,
		"/readyz answers within health.Timeout; the probe must wait longer to read the reasons")

	// Resources: requests for the scheduler and the autoscaler, a memory limit.
	assert.False(t, c.Resources.Requests.Cpu().IsZero(), "the CPU autoscaler needs a CPU request")
	assert.False(t, c.Resources.Requests.Memory().IsZero())
	assert.False(t, c.Resources.Limits.Memory().IsZero())

	assertDataMounted(t, "worker", pod, c, cm, m, false)
}

func TestK8sAutoscaler(t *testing.T) {
	m := loadManifests(t)
	h, d := m.hpas[0], m.deployments[0]
	assert.Equal(t, "Deployment", h.Spec.ScaleTargetRef.Kind)
	assert.Equal(t, "apps/v1", h.Spec.ScaleTargetRef.APIVersion)
	assert.Equal(t, d.Name, h.Spec.ScaleTargetRef.Name)
	require.NotNil(t, h.Spec.MinReplicas)
	assert.GreaterOrEqual(t, *h.Spec.MinReplicas, int32(1))
	assert.Greater(t, h.Spec.MaxReplicas, *h.Spec.MinReplicas)
	require.Len(t, h.Spec.Metrics, 1)
	metric := h.Spec.Metrics[0]
	require.Equal(t, autoscalingv2.ResourceMetricSourceType, metric.Type)
	assert.Equal(t, corev1.ResourceCPU, metric.Resource.Name)
	assert.Equal(t, autoscalingv2.UtilizationMetricType, metric.Resource.Target.Type)
	require.NotNil(t, metric.Resource.Target.AverageUtilization)
	assert.Greater(t, *metric.Resource.Target.AverageUtilization, int32(0))
}

func TestK8sStarterJob(t *testing.T) {
	m := loadManifests(t)
	cm := m.configMaps[0]
	j := m.jobs[0]
	require.NotNil(t, j.Spec.Suspend)
	assert.True(t, *j.Spec.Suspend, "applying the kustomization must not start a run")
	pod := j.Spec.Template.Spec
	assert.Equal(t, corev1.RestartPolicyNever, pod.RestartPolicy)
	assertPodSecurity(t, "starter", pod)
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	assert.Equal(t, m.deployments[0].Spec.Template.Spec.Containers[0].Image, c.Image, "the starter is in the worker's image")
	assert.Equal(t, []string{"/usr/local/bin/starter"}, c.Command)
	require.Len(t, c.Args, 2)
	assert.Equal(t, "run", c.Args[0])
	assertEnv(t, "starter", c, cm, m)
	assertSecretEnv(t, c, "TEMPORAL_API_KEY", true)
	assertDataMounted(t, "starter", pod, c, cm, m, true)
}

// TestK8sNATS checks the worker's settings for delivery to a NATS cluster: off until the
// ConfigMap names servers, and the credentials file documented in the ConfigMap is where the
// worker mounts the optional Secret.
func TestK8sNATS(t *testing.T) {
	m := loadManifests(t)
	cm := m.configMaps[0]
	for _, k := range []string{"TXFLOW_NATS_URL", "TXFLOW_NATS_CREDS", "TXFLOW_NATS_STREAM"} {
		assert.Contains(t, cm.Data, k, "the ConfigMap does not show %s", k)
	}
	assert.Empty(t, cm.Data["TXFLOW_NATS_URL"], "delivery needs a NATS cluster the kustomization does not install")
	assert.Equal(t, "TXFLOW", cm.Data["TXFLOW_NATS_STREAM"])

	pod := m.deployments[0].Spec.Template.Spec
	c := pod.Containers[0]
	i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == "txflow-nats-creds" })
	require.GreaterOrEqual(t, i, 0, "the worker does not mount the Secret txflow-nats-creds")
	v := pod.Volumes[i]
	require.NotNil(t, v.Secret.Optional)
	assert.True(t, *v.Secret.Optional, "the worker must start without NATS credentials")
	j := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.Name == v.Name })
	require.GreaterOrEqual(t, j, 0, "the volume %s is not mounted", v.Name)
	assert.True(t, c.VolumeMounts[j].ReadOnly)

	// The path the ConfigMap's comment gives is in that mount.
	raw, err := os.ReadFile(filepath.Join(k8sDir, "configmap.yaml"))
	require.NoError(t, err)
	path := regexp.MustCompile(`TXFLOW_NATS_CREDS: (/\S+)`).FindSubmatch(raw)
	require.NotNil(t, path, "configmap.yaml does not say where the credentials file is")
	assert.Equal(t, c.VolumeMounts[j].MountPath, filepath.Dir(string(path[1])))
}

func TestK8sFilesPod(t *testing.T) {
	m := loadManifests(t)
	path := filepath.Join(k8sDir, "tools", "files-pod.yaml")
	var pods []*corev1.Pod
	decodeFile(t, path, func(kind string, doc []byte) {
		require.Equal(t, "Pod", kind)
		pods = append(pods, strict[corev1.Pod](t, path, doc))
	})
	require.Len(t, pods, 1)
	p := pods[0]
	assert.Equal(t, m.kustomization.Namespace, p.Namespace, "it is applied without the kustomization")
	require.Len(t, p.Spec.Containers, 1)
	assertPinned(t, "files pod", p.Spec.Containers[0].Image)
	var claim string
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	assert.Equal(t, m.pvcs[0].Name, claim)
	assert.Contains(t, strings.Join(p.Spec.Containers[0].Command, " "), "mkdir -p "+m.configMaps[0].Data["TXFLOW_INPUT_DIR"]+" "+m.configMaps[0].Data["TXFLOW_OUTPUT_DIR"])
}

// assertEnv checks the container's environment: the ConfigMap in full, and only variables the
// code reads.
func assertEnv(t *testing.T, who string, c corev1.Container, cm *corev1.ConfigMap, m manifests) {
	t.Helper()
	known := knownVariables(t)
	var fromCM bool
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == cm.Name {
			fromCM = true
			assert.Nil(t, ef.ConfigMapRef.Optional, "%s: the ConfigMap is required", who)
		}
	}
	assert.True(t, fromCM, "%s does not take its environment from ConfigMap %s", who, cm.Name)
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "TXFLOW_") {
			assert.Contains(t, known, e.Name, "%s sets %s, which the code does not read", who, e.Name)
		}
		assert.NotContains(t, cm.Data, e.Name, "%s sets %s both in the ConfigMap and in env", who, e.Name)
	}
}

func assertSecretEnv(t *testing.T, c corev1.Container, name string, optional bool) {
	t.Helper()
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	require.GreaterOrEqual(t, i, 0, "%s: no %s", c.Name, name)
	e := c.Env[i]
	assert.Empty(t, e.Value, "%s: %s must come from the Secret, not a literal", c.Name, name)
	require.NotNil(t, e.ValueFrom)
	require.NotNil(t, e.ValueFrom.SecretKeyRef, "%s: %s is not from a Secret", c.Name, name)
	assert.Equal(t, "txflow-secrets", e.ValueFrom.SecretKeyRef.Name)
	assert.Equal(t, name, e.ValueFrom.SecretKeyRef.Key)
	assert.Equal(t, optional, e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional, "%s: %s optional", c.Name, name)
}

func assertPodSecurity(t *testing.T, who string, pod corev1.PodSpec) {
	t.Helper()
	sc := pod.SecurityContext
	require.NotNil(t, sc, who)
	require.NotNil(t, sc.RunAsNonRoot, who)
	assert.True(t, *sc.RunAsNonRoot, who)
	require.NotNil(t, sc.RunAsUser, who)
	assert.Equal(t, int64(65532), *sc.RunAsUser, "%s: the image's non-root user", who)
	require.NotNil(t, sc.FSGroup, who)
	assert.Equal(t, *sc.RunAsUser, *sc.FSGroup, "%s: the shared volume must be writable by the worker's user", who)
	for _, c := range pod.Containers {
		require.NotNil(t, c.SecurityContext, who)
		require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation, who)
		assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation, who)
	}
}

// assertDataMounted checks that the shared claim is mounted so that TXFLOW_INPUT_DIR and
// TXFLOW_OUTPUT_DIR are on it.
func assertDataMounted(t *testing.T, who string, pod corev1.PodSpec, c corev1.Container, cm *corev1.ConfigMap, m manifests, readOnly bool) {
	t.Helper()
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	for _, dir := range []string{cm.Data["TXFLOW_INPUT_DIR"], cm.Data["TXFLOW_OUTPUT_DIR"]} {
		var found bool
		for _, vm := range c.VolumeMounts {
			if dir != vm.MountPath && !strings.HasPrefix(dir, strings.TrimSuffix(vm.MountPath, "/")+"/") {
				continue
			}
			v, ok := volumes[vm.Name]
			require.True(t, ok, "%s mounts an undeclared volume %s", who, vm.Name)
			if assert.NotNil(t, v.PersistentVolumeClaim, "%s: %s is not on the shared claim", who, dir) {
				assert.Equal(t, m.pvcs[0].Name, v.PersistentVolumeClaim.ClaimName, who)
			}
			assert.Equal(t, readOnly, vm.ReadOnly, "%s: %s read-only", who, dir)
			found = true
		}
		assert.True(t, found, "%s: nothing mounted at %s", who, dir)
	}
	for _, vm := range c.VolumeMounts {
		_, ok := volumes[vm.Name]
		assert.True(t, ok, "%s mounts an undeclared volume %s", who, vm.Name)
	}
}

// resolvePort returns a probe's port as a number, looking named ports up in the container.
func resolvePort(t *testing.T, c corev1.Container, p intstr.IntOrString) string {
	t.Helper()
	if p.Type == intstr.Int {
		return p.String()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return strconv.Itoa(int(cp.ContainerPort))
		}
	}
	t.Fatalf("%s: no container port named %s", c.Name, p.StrVal)
	return ""
}
