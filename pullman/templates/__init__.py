"""Templates shipped as package data: the systemd user unit and the launchd LaunchAgent."""
