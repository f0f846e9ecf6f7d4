export * from "./catalogue.js"
export { type HistogramValue, type Labels, layerTest, MetricsSnapshot, seriesKey } from "./InMemoryMetrics.js"
