"""The traffic evidence: the HTTP client, the PromQL templates, gathering the evidence at one
instant, the holes in the data, and the recording rules that precompute it."""
