#pragma once
// baetyl-agent: the cloud link. Reports the node's status to the cloud and applies the
// application (APP) and master binary (MST) updates the cloud sends (see docs/agent.md).
#include "baetyl/context.h"

namespace baetyl::agent {

// Runs until the context is asked to stop. Throws config::ConfigError for a bad configuration.
void run_agent(Context& ctx);

}  // namespace baetyl::agent
