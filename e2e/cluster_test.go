package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/ferrycd/ferry/internal/localcluster"
)

// rolloutTimeout bounds each wait for the cluster to converge; generous, because CI shares two cores.
const rolloutTimeout = 2 * time.Minute

// startLocalCluster starts a whole local cluster for one test and stops it when the test ends, showing the end of
// every component's log when the test failed. Without the binaries it skips (or fails under FERRY_REQUIRE_TOOLS=1).
func startLocalCluster(t *testing.T, nodes int) *localcluster.Cluster {
	t.Helper()
	opts, err := localcluster.OptionsFromEnv(t.TempDir(), nodes)
	if err != nil {
		msg := err.Error() + " (`make test` sets them)"
		if os.Getenv("FERRY_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	began := time.Now()
	c, err := localcluster.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("local cluster with %d node(s) started in %s", nodes, time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the local cluster: %v", err)
		}
	})
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, name := range []string{localcluster.Etcd, localcluster.APIServer, localcluster.ControllerManager,
			localcluster.Scheduler, localcluster.Kwok} {
			t.Logf("--- last lines of %s ---\n%s", c.LogPath(name), c.LogTail(name, 30))
		}
	})
	return c
}

func TestLocalClusterRollsOutDeployments(t *testing.T) {
	c := startLocalCluster(t, 1)
	client, err := kubernetes.NewForConfig(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ns, err := client.CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	deployments := client.AppsV1().Deployments(ns.Name)

	t.Run("available with simulated pods", func(t *testing.T) {
		if _, err := deployments.Create(ctx, deployment("shop", "registry.example/shop:v1", 3), metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating Deployment: %v", err)
		}
		waitRolledOut(t, client, ns.Name, "shop", 3, "registry.example/shop:v1")
	})

	t.Run("scale and roll a new image", func(t *testing.T) {
		updateDeployment(t, deployments, "shop", func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](5) })
		waitRolledOut(t, client, ns.Name, "shop", 5, "registry.example/shop:v1")
		updateDeployment(t, deployments, "shop", func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Image = "registry.example/shop:v2"
		})
		waitRolledOut(t, client, ns.Name, "shop", 5, "registry.example/shop:v2")
	})

	t.Run("unschedulable pods keep the deployment progressing", func(t *testing.T) {
		d := deployment("nowhere", "registry.example/nowhere:v1", 2)
		d.Spec.Template.Spec.NodeSelector = map[string]string{"ferry.dev/no-such-node": "true"}
		if _, err := deployments.Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating Deployment: %v", err)
		}
		// Wait for the scheduler's verdict on every pod, then the Deployment must still be progressing, unavailable.
		waitFor(t, "the scheduler to find no node for nowhere's pods", func(ctx context.Context) (bool, error) {
			pods, err := client.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{LabelSelector: "app=nowhere"})
			if err != nil || len(pods.Items) != 2 {
				return false, err
			}
			for _, p := range pods.Items {
				cond := podCondition(p.Status.Conditions, corev1.PodScheduled)
				if cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable {
					return false, nil
				}
			}
			return true, nil
		})
		got, err := deployments.Get(ctx, "nowhere", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.ReadyReplicas != 0 || got.Status.AvailableReplicas != 0 {
			t.Errorf("ready/available replicas = %d/%d, want 0/0", got.Status.ReadyReplicas, got.Status.AvailableReplicas)
		}
		if cond := deploymentCondition(got, appsv1.DeploymentProgressing); cond == nil || cond.Status != corev1.ConditionTrue ||
			cond.Reason == "NewReplicaSetAvailable" || cond.Reason == "ProgressDeadlineExceeded" {
			t.Errorf("Progressing = %+v, want True while the rollout is under way", cond)
		}
		if cond := deploymentCondition(got, appsv1.DeploymentAvailable); cond == nil || cond.Status != corev1.ConditionFalse {
			t.Errorf("Available = %+v, want False", cond)
		}
	})
}

func TestLocalClusterKubeconfigAndStop(t *testing.T) {
	c := startLocalCluster(t, 2)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatalf("loading %s: %v", c.Kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing nodes with the admin kubeconfig: %v", err)
	}
	if len(nodes.Items) != 2 {
		t.Fatalf("got %d nodes, want 2", len(nodes.Items))
	}
	for _, n := range nodes.Items {
		if cond := nodeCondition(n.Status.Conditions, corev1.NodeReady); cond == nil || cond.Status != corev1.ConditionTrue {
			t.Errorf("node %s Ready = %+v, want True", n.Name, cond)
		}
		for _, taint := range n.Spec.Taints {
			if taint.Key == corev1.TaintNodeNotReady {
				t.Errorf("node %s still has taint %v", n.Name, taint)
			}
		}
	}

	procs := c.Processes()
	if len(procs) != 5 {
		t.Fatalf("processes = %v, want the 5 components", procs)
	}
	for _, p := range procs {
		if !processGroupAlive(p.PID) {
			t.Fatalf("%s (pid %d) is not running before Stop", p.Name, p.PID)
		}
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v, want the first one's result (nil)", err)
	}
	for _, p := range procs {
		if processGroupAlive(p.PID) {
			t.Errorf("%s (process group %d) still has a process after Stop", p.Name, p.PID)
		}
	}
	if _, err := client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{}); err == nil {
		t.Error("the API server still answers after Stop")
	}
}

func deployment(name, image string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

func updateDeployment(t *testing.T, deployments interface {
	Get(context.Context, string, metav1.GetOptions) (*appsv1.Deployment, error)
	Update(context.Context, *appsv1.Deployment, metav1.UpdateOptions) (*appsv1.Deployment, error)
}, name string, change func(*appsv1.Deployment)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := deployments.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(d)
		_, err = deployments.Update(t.Context(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("updating Deployment %s: %v", name, err)
	}
}

// waitRolledOut waits until the Deployment's rollout is complete (what `kubectl rollout status` checks) and every
// one of its pods is Ready and runs image.
func waitRolledOut(t *testing.T, client kubernetes.Interface, ns, name string, replicas int32, image string) {
	t.Helper()
	var last string
	waitFor(t, fmt.Sprintf("Deployment %s to roll out %d replicas of %s", name, replicas, image), func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = fmt.Sprintf("%+v", d.Status)
		if !rolloutComplete(d, replicas) {
			return false, nil
		}
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, p := range pods.Items {
			cond := podCondition(p.Status.Conditions, corev1.PodReady)
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && cond != nil &&
				cond.Status == corev1.ConditionTrue && p.Spec.Containers[0].Image == image && p.Spec.NodeName != "" {
				ready++
			}
		}
		last += fmt.Sprintf("; %d of %d pods ready with %s", ready, len(pods.Items), image)
		return ready == int(replicas) && len(pods.Items) == int(replicas), nil
	}, func() string { return last })
}

func rolloutComplete(d *appsv1.Deployment, replicas int32) bool {
	s := d.Status
	available := deploymentCondition(d, appsv1.DeploymentAvailable)
	progressing := deploymentCondition(d, appsv1.DeploymentProgressing)
	return s.ObservedGeneration >= d.Generation && s.Replicas == replicas && s.UpdatedReplicas == replicas &&
		s.ReadyReplicas == replicas && s.AvailableReplicas == replicas &&
		available != nil && available.Status == corev1.ConditionTrue &&
		progressing != nil && progressing.Reason == "NewReplicaSetAvailable"
}

// waitFor polls the API through cond until it holds, failing the test after rolloutTimeout with the last state
// seen (detail) so the failure says what never happened.
func waitFor(t *testing.T, what string, cond wait.ConditionWithContextFunc, detail ...func() string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, rolloutTimeout, true, cond)
	if err != nil {
		msg := fmt.Sprintf("waiting for %s: %v", what, err)
		for _, d := range detail {
			msg += "; last seen: " + d()
		}
		t.Fatal(msg)
	}
}

func deploymentCondition(d *appsv1.Deployment, typ appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == typ {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

func podCondition(conds []corev1.PodCondition, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func nodeCondition(conds []corev1.NodeCondition, typ corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}
