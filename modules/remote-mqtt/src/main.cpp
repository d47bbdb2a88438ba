#include "bridge.h"

int main(int argc, char** argv) { return baetyl::run(argc, argv, baetyl::remote::run_bridge); }
