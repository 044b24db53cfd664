package localcluster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

const (
	// nodeAnnotation marks the Nodes kwok manages (--manage-nodes-with-annotation-selector).
	nodeAnnotation      = "kwok.x-k8s.io/node"
	nodeAnnotationValue = "fake"
	// NodeLabel=NodeLabelValue is set on every fake Node, for workloads that want to select them explicitly.
	NodeLabel      = "type"
	NodeLabelValue = "kwok"
)

// createNodes registers the fake Nodes, as kubelets would, with a capacity large enough for any test workload.
func (c *Cluster) createNodes(ctx context.Context, client kubernetes.Interface) error {
	for i := range c.opts.Nodes {
		node := fakeNode(fmt.Sprintf("kwok-node-%d", i))
		if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating Node %s: %w", node.Name, err)
		}
		c.NodeNames = append(c.NodeNames, node.Name)
	}
	return nil
}

func fakeNode(name string) *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{nodeAnnotation: nodeAnnotationValue},
			Labels: map[string]string{
				NodeLabel:                       NodeLabelValue,
				corev1.LabelHostname:            name,
				corev1.LabelOSStable:            "linux",
				corev1.LabelArchStable:          "amd64",
				"node-role.kubernetes.io/agent": "",
			},
		},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
}

// waitForNodesSchedulable waits until kwok has made every fake Node Ready and no Node carries the not-ready
// taint, then until the controllers have created the default ServiceAccount (Pods need it to be admitted).
// The node-lifecycle controller lifts the taint on its next pass; lifting it here as soon as the Node is Ready
// saves that wait, and the controller agrees since the Node is Ready.
func (c *Cluster) waitForNodesSchedulable(ctx context.Context, client kubernetes.Interface) error {
	kwok, cm := c.proc(Kwok), c.proc(ControllerManager)
	for _, name := range c.NodeNames {
		err := c.waitFor(ctx, "Node "+name+" to be Ready", kwok, func(ctx context.Context) error {
			return nodeReady(ctx, client, name)
		})
		if err != nil {
			return err
		}
		if err := removeNotReadyTaint(ctx, client, name); err != nil {
			return err
		}
	}
	return c.waitFor(ctx, "the default ServiceAccount", cm, func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

func nodeReady(ctx context.Context, client kubernetes.Interface, name string) error {
	node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status == corev1.ConditionTrue {
				return nil
			}
			return fmt.Errorf("Ready is %s: %s", cond.Status, cond.Message)
		}
	}
	return fmt.Errorf("no Ready condition yet")
}

func removeNotReadyTaint(ctx context.Context, client kubernetes.Interface, name string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		kept := node.Spec.Taints[:0]
		for _, t := range node.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady {
				kept = append(kept, t)
			}
		}
		if len(kept) == len(node.Spec.Taints) {
			return nil
		}
		node.Spec.Taints = kept
		_, err = client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("removing the not-ready taint from Node %s: %w", name, err)
	}
	return nil
}

// proc returns the running component called name.
func (c *Cluster) proc(name string) *process {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}
