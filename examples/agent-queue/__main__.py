"""The rollback agent's queue as a Pulumi program.

    pulumi config set --path 'alarms[0]' webapp-prod-5xx-blue
    pulumi config set --path 'alarms[1]' webapp-prod-5xx-green
    pulumi up

Then run agents with `rollback agent run --queue $(pulumi stack output queue_url)`.
To declare it inside a stack program instead, copy agent_queue.py next to it
and pass the alarm names the program creates.
"""

import pulumi
from agent_queue import AgentQueue

config = pulumi.Config()
agent = AgentQueue("rollback-agent", alarms=config.require_object("alarms"))
pulumi.export("queue_url", agent.queue_url)
pulumi.export("dead_letter_queue_url", agent.dead_letter_queue_url)
pulumi.export("rule_arn", agent.rule_arn)
