"""The browser perceptual study: server (prepare a study folder, serve its page, record
answers), analysis (the study's report), page/ (the HTML, JS and CSS it serves).
"""
