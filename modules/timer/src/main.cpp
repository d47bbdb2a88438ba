#include "baetyl/context.h"
#include "timer.h"

int main(int argc, char** argv) { return baetyl::run(argc, argv, baetyl::timer::run_timer); }
