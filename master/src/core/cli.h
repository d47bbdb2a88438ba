#pragma once
// The `baetyl` command line: start, check, version, inspect.
namespace baetyl::master {

// Runs the command of argv and returns the process exit code: 0 on success, 1 on a failure
// (printed on stderr), 2 on a usage error.
int run_cli(int argc, char** argv);

}  // namespace baetyl::master
