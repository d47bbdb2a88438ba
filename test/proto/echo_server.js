#!/usr/bin/env node
// Echo server for the function proto interop test.
//
// Usage: node echo_server.js <port>
//
// Serves baetyl.Function/Call on 127.0.0.1:<port>, loading proto/function.proto with
// @grpc/proto-loader (keepCase, as the Node runtime does), and answers with the request, its
// Payload reversed and its FunctionName prefixed "node:". Exits on SIGTERM or SIGINT.
'use strict';

const path = require('path');
const { createRequire } = require('module');

const root = path.resolve(__dirname, '..', '..');
// The packages are those of the Node runtime: modules/function-node/node_modules.
const runtimeRequire = createRequire(path.join(root, 'modules', 'function-node', 'package.json'));

function load(name) {
  try {
    return runtimeRequire(name);
  } catch (err) {
    console.error(`echo_server.js: cannot load ${name} (${err.code || err.message}); ` +
                  'run scripts/install-deps.sh to install the npm packages of ' +
                  'modules/function-node');
    process.exit(3);
  }
}

const grpc = load('@grpc/grpc-js');
const protoLoader = load('@grpc/proto-loader');

function main() {
  const port = Number(process.argv[2]);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error('usage: echo_server.js <port>');
    process.exit(2);
  }
  const definition = protoLoader.loadSync(path.join(root, 'proto', 'function.proto'), {
    keepCase: true,
    longs: String,  // uint64/sint64 as decimal strings: no precision lost
    defaults: true,
  });
  const baetyl = grpc.loadPackageDefinition(definition).baetyl;

  const server = new grpc.Server();
  server.addService(baetyl.Function.service, {
    Call(call, callback) {
      const request = call.request;
      callback(null, {
        ...request,
        Payload: Buffer.from(request.Payload).reverse(),
        FunctionName: 'node:' + request.FunctionName,
      });
    },
  });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) {
      console.error(`echo_server.js: cannot listen on 127.0.0.1:${port}: ${err.message}`);
      process.exit(1);
    }
    console.log(`echo_server.js: listening on 127.0.0.1:${port}`);
  });

  const stop = () => server.tryShutdown(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
