/* plot_svg.c: the line chart of plots.h as a self-contained SVG file: plain elements only, a
 * generic font family, fixed canvas. SVG rather than a raster image because a chart in a report
 * should stay sharp at any zoom and be readable as text. Numbers are printed with printf in the
 * C locale (the tool never calls setlocale), so the file is the same on every machine. */
#include "plots.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Canvas and plot area in SVG user units; the right margin holds the legend. */
enum {
    CANVAS_W = 640,
    CANVAS_H = 400,
    PLOT_LEFT = 70,
    PLOT_RIGHT = 480,
    PLOT_TOP = 40,
    PLOT_BOTTOM = 350,
    LEGEND_LEFT = 495,
    LEGEND_ROW = 18,
    TICK_LEN = 5,
    MAX_SERIES = 16   /* as many legend rows as fit beside the plot area */
};

/* Tableau's 10 colours, then darker ones: neighbours stay distinguishable, also when printed. */
static const char *const COLOURS[MAX_SERIES] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"};

/* One axis: the value range mapped onto [pixel_lo, pixel_hi] and its ticks k * step. */
typedef struct axis {
    double lo, hi, step;
    double pixel_lo, pixel_hi;
    int digits;   /* significant digits that tell neighbouring tick labels apart */
} axis;

static double axis_pixel(const axis *a, double v)
{
    return a->pixel_lo + (v - a->lo) / (a->hi - a->lo) * (a->pixel_hi - a->pixel_lo);
}

/* A step of 1, 2 or 5 times a power of ten giving about five intervals over the range. */
static double nice_step(double span)
{
    double raw = span / 5.0;
    double magnitude = pow(10.0, floor(log10(raw)));
    double mantissa = raw / magnitude;
    double nice = mantissa < 1.5 ? 1.0 : mantissa < 3.5 ? 2.0 : mantissa < 7.5 ? 5.0 : 10.0;
    return nice * magnitude;
}

/* Sets the range [lo - pad, hi + pad] and its ticks. A range too narrow to draw (all values
 * equal, or equal to within rounding) is widened by 1 each side, or by a millionth of the value
 * where 1 would vanish in rounding. False when the range cannot be drawn at all. */
static bool axis_fit(axis *a, double lo, double hi, double pad_fraction)
{
    double largest = fmax(fabs(lo), fabs(hi));
    if (!(hi - lo > largest * 1e-12) || hi - lo < 1e-290) {
        double pad = fmax(1.0, largest * 1e-6);
        lo -= pad;
        hi += pad;
    } else {
        double pad = (hi - lo) * pad_fraction;
        lo -= pad;
        hi += pad;
    }
    if (!isfinite(lo) || !isfinite(hi) || !isfinite(hi - lo))
        return false;
    a->lo = lo;
    a->hi = hi;
    a->step = nice_step(hi - lo);
    if (!isfinite(a->step) || !(a->step > 0.0))
        return false;
    largest = fmax(fabs(lo), fabs(hi));
    int integer_digits = (int)floor(log10(largest)) + 1;
    int digits = integer_digits - (int)floor(log10(a->step));
    digits = digits > integer_digits ? digits : integer_digits;
    a->digits = digits < 1 ? 1 : digits > 15 ? 15 : digits;
    return true;
}

/* The k-th tick value of the axis, counting from the first one inside the range; false past the
 * last. Computed as an integer times the step so ticks do not drift. */
static bool axis_tick(const axis *a, int k, double *value)
{
    double t = (ceil(a->lo / a->step) + k) * a->step;
    if (k > 50 || t > a->hi + a->step * 1e-9)
        return false;
    *value = t == 0.0 ? 0.0 : t; /* never print "-0" */
    return true;
}

/* Writes text as XML character data. Control characters other than tab and newline are not
 * allowed in XML 1.0 and become '?'. */
void plot_svg_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            fputc((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' ? '?' : *s, f);
        }
    }
}

static void put_axes(FILE *f, const axis *ax, const axis *ay, const char *x_label,
                     const char *y_label)
{
    double value;
    fprintf(f, "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n");
    for (int k = 0; axis_tick(ay, k, &value); k++)
        fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\"/>\n", PLOT_LEFT,
                axis_pixel(ay, value), PLOT_RIGHT, axis_pixel(ay, value));
    for (int k = 0; axis_tick(ax, k, &value); k++)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/>\n", axis_pixel(ax, value),
                PLOT_TOP, axis_pixel(ax, value), PLOT_BOTTOM);
    fprintf(f, "</g>\n");
    fprintf(f, "<path d=\"M%d %dV%dH%d\" fill=\"none\" stroke=\"black\"/>\n", PLOT_LEFT, PLOT_TOP,
            PLOT_BOTTOM, PLOT_RIGHT);
    fprintf(f, "<g stroke=\"black\">\n");
    for (int k = 0; axis_tick(ay, k, &value); k++)
        fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\"/>\n", PLOT_LEFT - TICK_LEN,
                axis_pixel(ay, value), PLOT_LEFT, axis_pixel(ay, value));
    for (int k = 0; axis_tick(ax, k, &value); k++)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/>\n", axis_pixel(ax, value),
                PLOT_BOTTOM, axis_pixel(ax, value), PLOT_BOTTOM + TICK_LEN);
    fprintf(f, "</g>\n");
    fprintf(f, "<g text-anchor=\"end\">\n");
    for (int k = 0; axis_tick(ay, k, &value); k++)
        fprintf(f, "<text x=\"%d\" y=\"%.2f\">%.*g</text>\n", PLOT_LEFT - TICK_LEN - 3,
                axis_pixel(ay, value) + 4, ay->digits, value);
    fprintf(f, "</g>\n<g text-anchor=\"middle\">\n");
    for (int k = 0; axis_tick(ax, k, &value); k++)
        fprintf(f, "<text x=\"%.2f\" y=\"%d\">%.*g</text>\n", axis_pixel(ax, value),
                PLOT_BOTTOM + TICK_LEN + 14, ax->digits, value);
    fprintf(f, "<text x=\"%d\" y=\"%d\">", (PLOT_LEFT + PLOT_RIGHT) / 2, CANVAS_H - 12);
    plot_svg_text(f, x_label);
    fprintf(f, "</text>\n<text transform=\"rotate(-90 %d %d)\" x=\"%d\" y=\"%d\">", 18,
            (PLOT_TOP + PLOT_BOTTOM) / 2, 18, (PLOT_TOP + PLOT_BOTTOM) / 2);
    plot_svg_text(f, y_label);
    fprintf(f, "</text>\n</g>\n");
}

/* The shaded band: one polygon per run of points whose bounds are both finite, along the upper
 * bound and back along the lower. */
static void put_band(FILE *f, const axis *ax, const axis *ay, const double *x, int n,
                     const plot_series *s, const char *colour)
{
    for (int start = 0; start < n;) {
        if (!isfinite(s->lo[start]) || !isfinite(s->hi[start])) {
            start++;
            continue;
        }
        int end = start;
        while (end < n && isfinite(s->lo[end]) && isfinite(s->hi[end]))
            end++;
        fprintf(f, "<polygon fill=\"%s\" fill-opacity=\"0.18\" stroke=\"none\" points=\"", colour);
        for (int j = start; j < end; j++)
            fprintf(f, "%.2f,%.2f ", axis_pixel(ax, x[j]), axis_pixel(ay, s->hi[j]));
        for (int j = end - 1; j >= start; j--)
            fprintf(f, "%.2f,%.2f%s", axis_pixel(ax, x[j]), axis_pixel(ay, s->lo[j]),
                    j > start ? " " : "");
        fprintf(f, "\"/>\n");
        start = end;
    }
}

/* The line, broken where y is not finite so a missing point is not bridged, and its markers. */
static void put_line(FILE *f, const axis *ax, const axis *ay, const double *x, int n,
                     const plot_series *s, const char *colour)
{
    fprintf(f, "<g stroke=\"%s\" fill=\"%s\">\n", colour, colour);
    for (int start = 0; start < n;) {
        if (!isfinite(s->y[start])) {
            start++;
            continue;
        }
        int end = start;
        while (end < n && isfinite(s->y[end]))
            end++;
        fprintf(f, "<polyline fill=\"none\" stroke-width=\"2\" points=\"");
        for (int j = start; j < end; j++)
            fprintf(f, "%.2f,%.2f%s", axis_pixel(ax, x[j]), axis_pixel(ay, s->y[j]),
                    j + 1 < end ? " " : "");
        fprintf(f, "\"/>\n");
        start = end;
    }
    double radius = n > 50 ? 1.5 : 3.0; /* dense series: markers would hide the line */
    for (int j = 0; j < n; j++)
        if (isfinite(s->y[j]))
            fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.1f\"/>\n", axis_pixel(ax, x[j]),
                    axis_pixel(ay, s->y[j]), radius);
    fprintf(f, "</g>\n");
}

static void put_legend(FILE *f, const plot_series *series, int n_series)
{
    for (int i = 0; i < n_series; i++) {
        int y = PLOT_TOP + 8 + i * LEGEND_ROW;
        const char *colour = COLOURS[i];
        if (series[i].lo && series[i].hi)
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"24\" height=\"10\" fill=\"%s\" "
                       "fill-opacity=\"0.18\"/>\n", LEGEND_LEFT, y - 5, colour);
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                   "stroke-width=\"2\"/>\n", LEGEND_LEFT, y, LEGEND_LEFT + 24, y, colour);
        fprintf(f, "<circle cx=\"%d\" cy=\"%d\" r=\"3\" fill=\"%s\"/>\n", LEGEND_LEFT + 12, y,
                colour);
        fprintf(f, "<text x=\"%d\" y=\"%d\">", LEGEND_LEFT + 30, y + 4);
        plot_svg_text(f, series[i].name);
        fprintf(f, "</text>\n");
    }
}

static void put_chart(FILE *f, const char *title, const char *x_label, const char *y_label,
                      const double *x, int n, const plot_series *series, int n_series,
                      const axis *ax, const axis *ay)
{
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            CANVAS_W, CANVAS_H, CANVAS_W, CANVAS_H);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", CANVAS_W, CANVAS_H);
    fprintf(f, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">",
            CANVAS_W / 2);
    plot_svg_text(f, title);
    fprintf(f, "</text>\n");
    put_axes(f, ax, ay, x_label, y_label);
    for (int i = 0; i < n_series; i++)
        if (series[i].lo && series[i].hi)
            put_band(f, ax, ay, x, n, &series[i], COLOURS[i]);
    for (int i = 0; i < n_series; i++)
        put_line(f, ax, ay, x, n, &series[i], COLOURS[i]);
    put_legend(f, series, n_series);
    fprintf(f, "</svg>\n");
}

/* Checks the arguments and fits both axes to the data. */
static int plan_chart(const char *path, const double *x, int n, const plot_series *series,
                      int n_series, axis *ax, axis *ay, at_error *err)
{
    if (!x || n < 1)
        return plot_error(err, AT_ERR_ARG, "%s: no x values given (n=%d)", path, n);
    if (!series || n_series < 1 || n_series > MAX_SERIES)
        return plot_error(err, AT_ERR_ARG, "%s: %d series given; need 1 to %d", path, n_series,
                         MAX_SERIES);
    double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
    for (int j = 0; j < n; j++) {
        if (!isfinite(x[j]))
            return plot_error(err, AT_ERR_NUMERIC, "%s: x value %d is not finite", path, j);
        x_lo = fmin(x_lo, x[j]);
        x_hi = fmax(x_hi, x[j]);
    }
    for (int i = 0; i < n_series; i++) {
        const plot_series *s = &series[i];
        if (!s->name || !s->y)
            return plot_error(err, AT_ERR_ARG, "%s: series %d has no name or no values", path, i);
        if (!s->lo != !s->hi)
            return plot_error(err, AT_ERR_ARG, "%s: series %d has only one band bound", path, i);
        for (int j = 0; j < n; j++) {
            double values[3] = {s->y[j], s->lo ? s->lo[j] : NAN, s->hi ? s->hi[j] : NAN};
            for (int v = 0; v < 3; v++)
                if (isfinite(values[v])) {
                    y_lo = fmin(y_lo, values[v]);
                    y_hi = fmax(y_hi, values[v]);
                }
        }
    }
    if (y_lo > y_hi) {
        y_lo = 0.0; /* nothing finite to draw: an empty chart with a unit axis */
        y_hi = 1.0;
    }
    ax->pixel_lo = PLOT_LEFT;
    ax->pixel_hi = PLOT_RIGHT;
    ay->pixel_lo = PLOT_BOTTOM;
    ay->pixel_hi = PLOT_TOP;
    if (!axis_fit(ax, x_lo, x_hi, 0.0) || !axis_fit(ay, y_lo, y_hi, 0.05))
        return plot_error(err, AT_ERR_ARG, "%s: values span too wide a range to draw", path);
    return AT_OK;
}

int plot_write_atomic(const char *path, void (*put)(FILE *f, const void *ctx), const void *ctx,
                      at_error *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return plot_error(err, AT_ERR_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return plot_error(err, AT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    errno = 0;
    put(f, ctx);
    bool failed = ferror(f) != 0;
    int saved_errno = errno ? errno : EIO;
    if (fclose(f) != 0 && !failed) {
        failed = true;
        saved_errno = errno;
    }
    int status = AT_OK;
    if (failed)
        status = plot_error(err, AT_ERR_IO, "%s: cannot write: %s", path, strerror(saved_errno));
    else if (rename(tmp, path) != 0)
        status = plot_error(err, AT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    if (status)
        remove(tmp);
    return status;
}

/* Everything put_chart needs, for plot_write_atomic. */
typedef struct line_chart {
    const char *title, *x_label, *y_label;
    const double *x;
    int n;
    const plot_series *series;
    int n_series;
    axis ax, ay;
} line_chart;

static void put_line_chart(FILE *f, const void *ctx)
{
    const line_chart *c = ctx;
    put_chart(f, c->title, c->x_label, c->y_label, c->x, c->n, c->series, c->n_series, &c->ax,
              &c->ay);
}

int plot_svg_lines(const char *path, const char *title, const char *x_label, const char *y_label,
                   const double *x, int n, const plot_series *series, int n_series,
                   at_error *err)
{
    if (!path)
        return plot_error(err, AT_ERR_ARG, "(null): no file name given");
    line_chart chart = {.title = title, .x_label = x_label, .y_label = y_label, .x = x, .n = n,
                        .series = series, .n_series = n_series};
    int status = plan_chart(path, x, n, series, n_series, &chart.ax, &chart.ay, err);
    if (status)
        return status;
    return plot_write_atomic(path, put_line_chart, &chart, err);
}
