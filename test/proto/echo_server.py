#!/usr/bin/python3
"""Echo server for the function proto interop test.

Usage: /usr/bin/python3 echo_server.py <dir with function_pb2*.py> <port>

Serves baetyl.Function/Call on 127.0.0.1:<port> and answers with the request, its Payload
reversed and its FunctionName prefixed "py:". Exits on SIGTERM or SIGINT.
"""
import signal
import sys
import threading
from concurrent import futures


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: echo_server.py <stubs dir> <port>\n")
        return 2
    stubs_dir, port = sys.argv[1], int(sys.argv[2])
    sys.path.insert(0, stubs_dir)

    import grpc
    import function_pb2
    import function_pb2_grpc

    class Echo(function_pb2_grpc.FunctionServicer):
        def Call(self, request, context):
            reply = function_pb2.FunctionMessage()
            reply.CopyFrom(request)
            reply.Payload = request.Payload[::-1]
            reply.FunctionName = "py:" + request.FunctionName
            return reply

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    function_pb2_grpc.add_FunctionServicer_to_server(Echo(), server)
    if server.add_insecure_port("127.0.0.1:%d" % port) == 0:
        sys.stderr.write("echo_server.py: cannot listen on 127.0.0.1:%d\n" % port)
        return 1
    server.start()
    print("echo_server.py: listening on 127.0.0.1:%d" % port, flush=True)

    stopped = threading.Event()

    def stop(signum, frame):
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stopped.wait()
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
