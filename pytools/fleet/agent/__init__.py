"""What runs on a robot: the stdlib-only agent (shipped to robots) and a small inference service."""
import os

# The agent file robots are given, wherever pytools is installed (a checkout or site-packages).
AGENT_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "robot_agent.py")
