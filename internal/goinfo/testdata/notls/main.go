// notls is a Go program without crypto/tls.
package main

import "fmt"

func main() { fmt.Println("no tls here") }
