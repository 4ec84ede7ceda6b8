//! Dependencies and probes: `depends_on` conditions, readiness and liveness, start and stop in graph order.
