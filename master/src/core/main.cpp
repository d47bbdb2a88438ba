#include "core/cli.h"

int main(int argc, char** argv) { return baetyl::master::run_cli(argc, argv); }
