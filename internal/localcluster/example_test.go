package localcluster_test

import (
	"context"
	"fmt"
	"log"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ferrycd/ferry/internal/localcluster"
)

// A plain main (the demo) starts a cluster from the binaries named in the environment and stops it on the way out.
func ExampleStart() {
	opts, err := localcluster.OptionsFromEnv(".demo/cluster", 1)
	if err != nil {
		log.Fatal(err)
	}
	cluster, err := localcluster.Start(context.Background(), opts)
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			log.Print(err)
		}
	}()
	client, err := kubernetes.NewForConfig(cluster.RESTConfig)
	if err != nil {
		log.Print(err)
		return
	}
	nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		log.Print(err)
		return
	}
	fmt.Println("kubeconfig:", cluster.Kubeconfig, "nodes:", len(nodes.Items))
}
