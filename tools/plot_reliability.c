/* plot_reliability.c: the reliability diagram of plots.h (Guo et al., "On Calibration of Modern
 * Neural Networks", ICML 2017, figure 1): accuracy per confidence bin against the diagonal a
 * perfectly calibrated model would follow, with the gap to each bin's mean confidence shaded
 * (below the diagonal: over-confident), and the bin counts underneath, because a bin of three
 * predictions says little. Plain SVG elements, fixed canvas, numbers in the C locale. */
#include "plots.h"

#include <math.h>

enum {
    CANVAS_W = 640,
    CANVAS_H = 460,
    PLOT_LEFT = 70,
    PLOT_RIGHT = 400,
    MAIN_TOP = 40,
    MAIN_BOTTOM = 330,  /* accuracy 0..1 */
    COUNT_TOP = 345,
    COUNT_BOTTOM = 405, /* count 0..largest */
    LEGEND_LEFT = 425,
    MAX_BINS = 1000
};

#define ACC_COLOUR "#1f77b4"
#define GAP_COLOUR "#d62728"
#define COUNT_COLOUR "#7f7f7f"

typedef struct diagram {
    const char *title;
    int bins;
    const long *count;
    const double *accuracy, *confidence;
    double ece;
    long total, largest;
} diagram;

static double px_x(double v) { return PLOT_LEFT + v * (PLOT_RIGHT - PLOT_LEFT); }
static double px_y(double v) { return MAIN_BOTTOM - v * (MAIN_BOTTOM - MAIN_TOP); }

/* The horizontal extent of bin m, with a hairline gap between wide bars. */
static void bar_x(const diagram *d, int m, double *x, double *width)
{
    double lo = px_x((double)m / d->bins), hi = px_x((double)(m + 1) / d->bins);
    double inset = hi - lo > 4.0 ? 0.5 : 0.0;
    *x = lo + inset;
    *width = hi - lo - 2 * inset;
}

static void put_axes(FILE *f)
{
    fprintf(f, "<g stroke=\"#e0e0e0\">\n");
    for (int k = 0; k <= 5; k++) {
        double v = k / 5.0;
        fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\"/>\n", PLOT_LEFT, px_y(v),
                PLOT_RIGHT, px_y(v));
        fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/>\n", px_x(v), MAIN_TOP,
                px_x(v), MAIN_BOTTOM);
    }
    fprintf(f, "</g>\n<path d=\"M%d %dV%dH%d\" fill=\"none\" stroke=\"black\"/>\n", PLOT_LEFT,
            MAIN_TOP, MAIN_BOTTOM, PLOT_RIGHT);
    fprintf(f, "<path d=\"M%d %dV%dH%d\" fill=\"none\" stroke=\"black\"/>\n", PLOT_LEFT,
            COUNT_TOP, COUNT_BOTTOM, PLOT_RIGHT);
    fprintf(f, "<g text-anchor=\"end\">\n");
    for (int k = 0; k <= 5; k++)
        fprintf(f, "<text x=\"%d\" y=\"%.2f\">%.1f</text>\n", PLOT_LEFT - 6, px_y(k / 5.0) + 4,
                k / 5.0);
    fprintf(f, "</g>\n<g text-anchor=\"middle\">\n");
    for (int k = 0; k <= 5; k++)
        fprintf(f, "<text x=\"%.2f\" y=\"%d\">%.1f</text>\n", px_x(k / 5.0), COUNT_BOTTOM + 16,
                k / 5.0);
    fprintf(f, "<text x=\"%d\" y=\"%d\">confidence (largest softmax probability)</text>\n",
            (PLOT_LEFT + PLOT_RIGHT) / 2, COUNT_BOTTOM + 40);
    fprintf(f, "<text transform=\"rotate(-90 18 %d)\" x=\"18\" y=\"%d\">accuracy</text>\n",
            (MAIN_TOP + MAIN_BOTTOM) / 2, (MAIN_TOP + MAIN_BOTTOM) / 2);
    fprintf(f, "<text transform=\"rotate(-90 18 %d)\" x=\"18\" y=\"%d\">count</text>\n",
            (COUNT_TOP + COUNT_BOTTOM) / 2, (COUNT_TOP + COUNT_BOTTOM) / 2);
    fprintf(f, "</g>\n");
}

static void put_bars(FILE *f, const diagram *d)
{
    double x, w;
    fprintf(f, "<g id=\"accuracy\" fill=\"%s\" fill-opacity=\"0.85\">\n", ACC_COLOUR);
    for (int m = 0; m < d->bins; m++)
        if (d->count[m] > 0) {
            bar_x(d, m, &x, &w);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n", x,
                    px_y(d->accuracy[m]), w, px_y(0.0) - px_y(d->accuracy[m]));
        }
    fprintf(f, "</g>\n<g id=\"gap\" fill=\"%s\" fill-opacity=\"0.3\" stroke=\"%s\">\n",
            GAP_COLOUR, GAP_COLOUR);
    for (int m = 0; m < d->bins; m++)
        if (d->count[m] > 0) {
            double lo = fmin(d->accuracy[m], d->confidence[m]);
            double hi = fmax(d->accuracy[m], d->confidence[m]);
            bar_x(d, m, &x, &w);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n", x,
                    px_y(hi), w, px_y(lo) - px_y(hi));
        }
    fprintf(f, "</g>\n<line id=\"diagonal\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
               "stroke=\"black\" stroke-dasharray=\"5 4\"/>\n",
            px_x(0), px_y(0), px_x(1), px_y(1));
    fprintf(f, "<g id=\"counts\" fill=\"%s\">\n", COUNT_COLOUR);
    for (int m = 0; m < d->bins; m++)
        if (d->count[m] > 0) {
            double h = (double)d->count[m] / d->largest * (COUNT_BOTTOM - COUNT_TOP);
            bar_x(d, m, &x, &w);
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n", x,
                    COUNT_BOTTOM - h, w, h);
        }
    fprintf(f, "</g>\n<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"end\">%ld</text>\n",
            PLOT_LEFT - 6, COUNT_TOP + 4, d->largest);
}

static void put_legend(FILE *f, const diagram *d)
{
    int y = MAIN_TOP + 8;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"24\" height=\"10\" fill=\"%s\"/>\n", LEGEND_LEFT,
            y - 5, ACC_COLOUR);
    fprintf(f, "<text x=\"%d\" y=\"%d\">accuracy per bin</text>\n", LEGEND_LEFT + 30, y + 4);
    y += 18;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"24\" height=\"10\" fill=\"%s\" "
               "fill-opacity=\"0.3\" stroke=\"%s\"/>\n", LEGEND_LEFT, y - 5, GAP_COLOUR, GAP_COLOUR);
    fprintf(f, "<text x=\"%d\" y=\"%d\">gap to mean confidence</text>\n", LEGEND_LEFT + 30, y + 4);
    y += 18;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\" "
               "stroke-dasharray=\"5 4\"/>\n", LEGEND_LEFT, y, LEGEND_LEFT + 24, y);
    fprintf(f, "<text x=\"%d\" y=\"%d\">perfect calibration</text>\n", LEGEND_LEFT + 30, y + 4);
    y += 18;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"24\" height=\"10\" fill=\"%s\"/>\n", LEGEND_LEFT,
            y - 5, COUNT_COLOUR);
    fprintf(f, "<text x=\"%d\" y=\"%d\">predictions per bin</text>\n", LEGEND_LEFT + 30, y + 4);
    y += 30;
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"14\">ECE %.2f%%</text>\n", LEGEND_LEFT, y,
            100 * d->ece);
    fprintf(f, "<text x=\"%d\" y=\"%d\">%ld predictions, %d bins</text>\n", LEGEND_LEFT, y + 18,
            d->total, d->bins);
}

static void put_diagram(FILE *f, const void *ctx)
{
    const diagram *d = ctx;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            CANVAS_W, CANVAS_H, CANVAS_W, CANVAS_H);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", CANVAS_W, CANVAS_H);
    fprintf(f, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", CANVAS_W / 2);
    plot_svg_text(f, d->title);
    fprintf(f, "</text>\n");
    put_axes(f);
    put_bars(f, d);
    put_legend(f, d);
    fprintf(f, "</svg>\n");
}

int plot_svg_reliability(const char *path, const char *title, int bins, const long *count,
                         const double *accuracy, const double *confidence, double ece,
                         at_error *err)
{
    if (!path)
        return plot_error(err, AT_ERR_ARG, "(null): no file name given");
    if (bins < 1 || bins > MAX_BINS || !count || !accuracy || !confidence)
        return plot_error(err, AT_ERR_ARG, "%s: %d bins given; need 1 to %d with counts, "
                          "accuracies and confidences", path, bins, MAX_BINS);
    if (!(ece >= 0.0 && ece <= 1.0))
        return plot_error(err, AT_ERR_ARG, "%s: ECE %g outside [0, 1]", path, ece);
    diagram d = {title, bins, count, accuracy, confidence, ece, 0, 0};
    for (int m = 0; m < bins; m++) {
        if (count[m] < 0)
            return plot_error(err, AT_ERR_ARG, "%s: bin %d has count %ld", path, m, count[m]);
        if (count[m] == 0)
            continue;
        if (!(accuracy[m] >= 0.0 && accuracy[m] <= 1.0 && confidence[m] >= 0.0 &&
              confidence[m] <= 1.0))
            return plot_error(err, AT_ERR_ARG, "%s: bin %d has accuracy %g and confidence %g, "
                              "not both in [0, 1]", path, m, accuracy[m], confidence[m]);
        d.total += count[m];
        d.largest = count[m] > d.largest ? count[m] : d.largest;
    }
    if (d.total == 0)
        return plot_error(err, AT_ERR_ARG, "%s: every bin is empty", path);
    return plot_write_atomic(path, put_diagram, &d, err);
}
