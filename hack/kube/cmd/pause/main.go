// Command pause is the sandbox process of the cluster tier's pods (containerd's sandbox_image):
// the first process of every pod, holding its namespaces until the pod is deleted. It does what
// Kubernetes' own pause does: wait for SIGINT or SIGTERM and exit 0, and reap orphaned children
// (it is PID 1 when the pod shares its process namespace). Built statically (CGO off), it is the
// only file of its image, since no registry can be reached for registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	children := make(chan os.Signal, 16)
	signal.Notify(children, syscall.SIGCHLD)
	for {
		select {
		case <-stop:
			os.Exit(0)
		case <-children:
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}
