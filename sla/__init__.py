"""SLA: business calendars, policies (own config types), clocks, and the monitor. Never imports
`router`."""
