// Command etcd runs etcd's own server entry point, built from the etcd Go modules so the test
// harness needs no prebuilt binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
