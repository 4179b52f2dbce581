import uPlot from 'uplot'
import { byId } from './dom.js'

// Time-series charts of the console (uPlot, bundled into the page's script): a chart is redrawn
// with new data on each poll, and rebuilt only when its set of series changes (a peer appears).

export interface Series { label: string, values: Array<number | null>, stepped?: boolean, dashed?: boolean }

const COLORS = ['#1e88e5', '#e53935', '#43a047', '#fb8c00', '#8e24aa', '#00897b', '#6d4c41', '#3949ab', '#c0ca33', '#d81b60']
const HEIGHT_PX = 180

export class LineChart {
  readonly #container: HTMLElement
  readonly #range: [number, number] | undefined
  #plot: uPlot | undefined
  #labels = ''

  /** range fixes the y axis (trust scores live in 0..1); otherwise it follows the data. */
  constructor (containerId: string, range?: [number, number]) {
    this.#container = byId(containerId)
    this.#range = range
    new ResizeObserver(() => this.#plot?.setSize({ width: this.#width(), height: HEIGHT_PX })).observe(this.#container)
  }

  /** xs: wall-clock milliseconds. */
  update (xs: number[], series: Series[]): void {
    const data: uPlot.AlignedData = [xs.map((x) => x / 1000), ...series.map((s) => s.values)]
    const labels = series.map((s) => s.label).join('\n')
    if (this.#plot !== undefined && labels === this.#labels) {
      this.#plot.setData(data)
      return
    }
    this.#plot?.destroy()
    this.#labels = labels
    this.#plot = new uPlot({
      width: this.#width(),
      height: HEIGHT_PX,
      scales: { x: { time: true }, ...(this.#range !== undefined ? { y: { range: this.#range } } : {}) },
      legend: { live: false },
      series: [{}, ...series.map((s, i) => ({
        label: s.label,
        stroke: COLORS[i % COLORS.length]!,
        width: 2,
        points: { show: false },
        spanGaps: false,
        ...(s.dashed === true ? { dash: [6, 4] } : {}),
        ...(s.stepped === true ? { paths: uPlot.paths.stepped!({ align: 1 }) } : {})
      }))]
    }, data, this.#container)
  }

  #width (): number {
    return Math.max(240, this.#container.clientWidth)
  }
}
