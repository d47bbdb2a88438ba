#include "baetyl/context.h"
#include "manager.h"

int main(int argc, char** argv) { return baetyl::run(argc, argv, baetyl::function::run_manager); }
