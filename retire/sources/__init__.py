"""Where the evidence comes from: Prometheus (the calls), the disk (the versions and the server
configs), and, when asked, the model server itself (what is loaded). Nothing here decides a
verdict; the advisor does."""
