import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dashboardQueries, exportedNames, promqlMetricNames } from './grafana-queries';

describe('Grafana dashboards', () => {
  it('reads metric names out of PromQL, leaving out functions, labels, ranges and grouping', () => {
    assert.deepEqual(
      promqlMetricNames(
        'histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket{namespace=~"$namespace",envoy_cluster_name=~"outbound.*"}[$__rate_interval])))',
      ),
      ['envoy_cluster_upstream_rq_time_bucket'],
    );
    assert.deepEqual(
      promqlMetricNames('sum(rate(a_sum[5m])) / sum(rate(a_count[5m])) and on (pod) b > bool 0'),
      ['a_count', 'a_sum', 'b'],
    );
    assert.deepEqual(promqlMetricNames('1 - count(x{l="rate(y)"}) offset 5m'), ['x']);
  });

  it('reads exported names from a Prometheus exposition, histograms with their series', () => {
    const names = exportedNames(
      '# TYPE h histogram\nh_bucket{le="1"} 0\n# TYPE c counter\nc{a="b"} 1\nplain 2\n',
    );
    assert.deepEqual([...names].sort(), ['c', 'h', 'h_bucket', 'h_count', 'h_sum', 'plain']);
  });

  it('has a control plane and a data plane dashboard, each with queries', () => {
    const qs = dashboardQueries();
    const byFile = new Map<string, number>();
    for (const q of qs) byFile.set(q.dashboard, (byFile.get(q.dashboard) ?? 0) + 1);
    assert.deepEqual([...byFile.keys()].sort(), ['weft-control-plane.json', 'weft-data-plane.json']);
    for (const q of qs)
      assert.ok(promqlMetricNames(q.expr).length > 0, `${q.dashboard} ${q.where}: ${q.expr}`);
    // Weft's own metrics on one, the sidecars' on the other.
    for (const q of qs) {
      const prefix = q.dashboard === 'weft-control-plane.json' ? 'weft_' : 'envoy_';
      for (const n of promqlMetricNames(q.expr))
        assert.ok(n.startsWith(prefix), `${q.dashboard} ${q.where}: ${n}`);
    }
  });
});
