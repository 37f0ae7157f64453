/* ui/list_impl.h — a selectable, scrolling list (ui/list.c).
 *
 * Holds only positions; the items live with whoever owns the list.
 * Invariant after every call: n == 0 -> sel == 0 && top == 0; otherwise
 * 0 <= sel < n and top <= sel < top + height (for the last height given).
 */
#ifndef TERN_UI_LIST_IMPL_H
#define TERN_UI_LIST_IMPL_H

struct ui_list {
	int n, sel, top;
};

void ui_list_set_count(struct ui_list *l, int n);
/* Move the selection by delta (clamped, no wrap) and keep it visible. */
void ui_list_move(struct ui_list *l, int delta, int height);
void ui_list_select(struct ui_list *l, int index, int height);
/* Re-establish top for a viewport of `height` rows. */
void ui_list_scroll_to(struct ui_list *l, int height);

#endif
