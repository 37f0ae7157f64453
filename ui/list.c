/* ui/list.c — selection and scrolling of a list (see list_impl.h). */
#include "config.h"

#include "ui/list_impl.h"

void ui_list_scroll_to(struct ui_list *l, int height)
{
	if (height < 1)
		height = 1;
	if (l->n <= 0) {
		l->n = 0;
		l->sel = l->top = 0;
		return;
	}
	if (l->sel >= l->n)
		l->sel = l->n - 1;
	if (l->sel < 0)
		l->sel = 0;
	if (l->top > l->sel)
		l->top = l->sel;
	if (l->sel >= l->top + height)
		l->top = l->sel - height + 1;
	/* no empty space below the last item when the list fits */
	if (l->top > 0 && l->n - l->top < height)
		l->top = l->n - height > 0 ? l->n - height : 0;
	if (l->top < 0)
		l->top = 0;
}

void ui_list_set_count(struct ui_list *l, int n)
{
	l->n = n < 0 ? 0 : n;
	ui_list_scroll_to(l, 1 << 30);
}

void ui_list_move(struct ui_list *l, int delta, int height)
{
	l->sel += delta;
	ui_list_scroll_to(l, height);
}

void ui_list_select(struct ui_list *l, int index, int height)
{
	l->sel = index;
	ui_list_scroll_to(l, height);
}
