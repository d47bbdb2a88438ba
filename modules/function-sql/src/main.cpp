#include "baetyl/context.h"
#include "server.h"

int main(int argc, char** argv) { return baetyl::run(argc, argv, baetyl::sql::run_runtime); }
