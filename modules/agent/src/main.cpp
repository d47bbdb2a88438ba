#include "agent.h"
#include "baetyl/context.h"

int main(int argc, char** argv) { return baetyl::run(argc, argv, baetyl::agent::run_agent); }
