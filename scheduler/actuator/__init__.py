"""The Kubernetes edge of the controller: connect, read the cluster into a Snapshot (with a watch
cache that knows when it may be trusted), work out the smallest set of writes a plan needs, and
send them with retries. The only code of the controller that talks to an API server."""
