"""kube-scheduler extender: filter, bind, explanation API."""
