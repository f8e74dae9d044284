// grpcapp is the gRPC program the capture tests build: a TLS gRPC server
// of grpc.testing.TestService and a client making a unary call, a
// server-streaming call and a call that fails with NOT_FOUND.
//
//	grpcapp server ADDR CERT KEY
//	grpcapp client ADDR
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

type service struct {
	testgrpc.UnimplementedTestServiceServer
}

func (service) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if st := req.GetResponseStatus(); st != nil && st.Code != 0 {
		return nil, status.Error(codes.Code(st.Code), st.Message)
	}
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: make([]byte, req.ResponseSize)}}, nil
}

func (service) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	for _, p := range req.ResponseParameters {
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.Size)}}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	switch os.Args[1] {
	case "server":
		cert, err := tls.LoadX509KeyPair(os.Args[3], os.Args[4])
		check(err)
		ln, err := net.Listen("tcp", os.Args[2])
		check(err)
		s := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
		testgrpc.RegisterTestServiceServer(s, service{})
		check(s.Serve(ln))
	case "client":
		conn, err := grpc.NewClient(os.Args[2], grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
		check(err)
		defer conn.Close()
		c := testgrpc.NewTestServiceClient(conn)
		ctx := context.Background()
		r, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 10})
		check(err)
		st, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 3}}})
		check(err)
		n := 0
		for {
			_, err := st.Recv()
			if err == io.EOF {
				break
			}
			check(err)
			n++
		}
		_, err = c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: 5, Message: "no such thing"}})
		fmt.Println(len(r.Payload.Body), n, status.Code(err))
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
